"""``cdp-connector replay-dlq``: send dead letters through decode → map → deliver again.

After an operator fixed the cause (a mapping rule, the credentials, a schema), the
dead-letter topic is read by its own consumer group (``<group_id>.dlq-replay`` by
default) from its committed offsets up to the end of each partition *as of start*,
and every record that passes the filter goes through the pipeline's own stages
(``Preparer``, ``Dispatcher``, ``DeadLetterQueue``, ``OffsetTracker``) under the
same guarantee as ``run``: the replay group's offset moves past a record only when
it has an outcome — delivered, skipped by a rule, left alone by the filter, or
written back to the dead-letter topic (write acknowledged) with fresh error headers
and ``cdp.errors.replay.attempts`` one higher. Nothing is lost; the records written
back lie past the end it stops at, so one run never loops.

A 401/403, retries exhausted in ``halt`` mode, or a schema registry that is down
stops the run (exit 1) with unfinished records uncommitted: run it again later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jmespath
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTP

from connector.config import Settings
from connector.deadletter import DeadLetterQueue, error_headers, header_value
from connector.dispatch import Dispatcher, Failure, Headers, Work, lane_for
from connector.errors import ConfigError, RecordError, TransientError
from connector.observability import Metrics
from connector.offsets import OffsetTracker, TopicPartition
from connector.pipeline import (
    Preparer,
    build_mapper,
    delivery_sender,
    instance_name,
)
from connector.source import commit_metadata
from connector.state import RunState

log = logging.getLogger(__name__)

REPLAY_ATTEMPTS = "cdp.errors.replay.attempts"
_ERROR_HEADER_PREFIXES = ("__connect.errors.", "cdp.errors.")


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay: the DLQ record's timestamp window and a JMESPath over its headers."""

    group: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    filter: str | None = None
    timeout: float = 30.0  # for metadata and the first answers from the broker


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"not an ISO 8601 time: {text!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class RecordFilter:
    """``--since`` / ``--until`` on the dead letter's timestamp, ``--filter`` on its headers.

    The filter is a JMESPath expression over an object whose keys are the header
    names and values their text (the last one when repeated), e.g.
    ``"cdp.errors.stage" == 'deliver'`` or ``"cdp.errors.http.status" == '400'``.
    A record matches when the expression is truthy.
    """

    def __init__(self, options: ReplayOptions) -> None:
        self._since = options.since
        self._until = options.until
        try:
            self._expr = jmespath.compile(options.filter) if options.filter else None
        except jmespath.exceptions.ParseError as exc:
            raise ConfigError(f"--filter is not a valid JMESPath expression: {exc}") from exc

    def matches(self, timestamp_ms: int | None, headers: Headers) -> bool:
        if (self._since or self._until) and timestamp_ms is not None:
            when = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            if self._since is not None and when < self._since:
                return False
            if self._until is not None and when >= self._until:
                return False
        if self._expr is None:
            return True
        fields = {
            k: v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in headers or ()
        }
        return bool(self._expr.search(fields))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a dead letter first came from, and how often it was replayed already."""

    topic: str
    partition: int
    offset: int
    attempts: int
    headers: Headers  # the original record's own headers, without our error headers

    @classmethod
    def of(cls, headers: Headers) -> Origin:
        def number(name: str, default: int) -> int:
            value = header_value(headers, name)
            try:
                return int(value) if value is not None else default
            except ValueError:
                return default

        own = [(k, v) for k, v in headers or () if not k.startswith(_ERROR_HEADER_PREFIXES)]
        return cls(
            header_value(headers, "__connect.errors.topic") or "",
            number("__connect.errors.partition", -1),
            number("__connect.errors.offset", -1),
            number(REPLAY_ATTEMPTS, 0),
            own,
        )

    def error_headers(self, **why: Any) -> list[tuple[str, str | bytes | None]]:
        headers = error_headers(self.topic, self.partition, self.offset, **why)
        return [*headers, (REPLAY_ATTEMPTS, str(self.attempts + 1).encode())]


@dataclass
class _Replayed:
    """Dead-letter sink for the dispatcher: writes back with the origin's coordinates."""

    dlq: DeadLetterQueue
    origins: dict[tuple[TopicPartition, int], Origin] = field(default_factory=dict)

    def publish_work(self, work: Work, failure: Failure, on_done: Callable[[], None]) -> None:
        origin = self.origins.pop((work.tp, work.offset))
        log.warning(
            "delivery failed again: %s", failure.reason,
            extra={"topic": origin.topic, "partition": origin.partition, "offset": origin.offset},
        )  # fmt: skip
        self.dlq.publish(
            key=work.key,
            value=work.value,
            original_headers=origin.headers,
            headers=origin.error_headers(
                stage="deliver",
                exception=failure.exception,
                message=failure.reason,
                rule=failure.rule,
                status=failure.status,
                attempts=failure.attempts,
            ),
            on_done=on_done,
        )


class Replayer:
    """Reads the dead-letter topic up to its end at start and settles each record."""

    def __init__(self, settings: Settings, options: ReplayOptions) -> None:
        self.settings = settings
        self.options = options
        self.topic = settings.dead_letter.topic
        self.group = options.group or f"{settings.kafka.group_id}.dlq-replay"
        self.state = RunState()
        self.instance = instance_name()
        self.metrics = Metrics(self.instance)
        self.tracker = OffsetTracker()
        self.filter = RecordFilter(options)
        self.mapper = build_mapper(settings)
        self.preparer = Preparer(settings, self.mapper)
        self.dlq = DeadLetterQueue(
            settings.kafka.producer_conf(),
            self.topic,
            self.state,
            on_written=self.metrics.dead_lettered,
        )
        self.sink = _Replayed(self.dlq)
        self.consumer = Consumer(
            {
                **settings.kafka.consumer_conf(),
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "client.id": f"cdp-connector-replay-{self.instance}",
            }
        )
        self.ends: dict[int, int] = {}
        self.remaining: set[int] = set()
        self.epochs: dict[int, int] = {}
        self.read = 0
        self.filtered_out = 0
        self.committed: dict[int, int] = {}

    # -- setup --------------------------------------------------------------------------

    def assign(self) -> None:
        """Fix the end of each partition now; start from the group's committed offsets."""
        timeout = self.options.timeout
        try:
            meta = self.consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        except KafkaException as exc:
            raise ReplayError(f"no metadata for {self.topic!r}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error else "no partitions"
            raise ReplayError(f"dead-letter topic {self.topic!r} unavailable: {why}")
        parts = sorted(meta.partitions)
        committed = self.consumer.committed([KafkaTP(self.topic, p) for p in parts], timeout)
        starts: list[KafkaTP] = []
        for tp in committed:
            low, high = self.consumer.get_watermark_offsets(
                KafkaTP(self.topic, tp.partition), timeout
            )
            start = tp.offset if tp.offset >= 0 else low
            self.ends[tp.partition] = high
            self.epochs[tp.partition] = self.tracker.assign((self.topic, tp.partition))
            if start < high:
                self.remaining.add(tp.partition)
            starts.append(
                KafkaTP(self.topic, tp.partition, start if start >= 0 else OFFSET_BEGINNING)
            )
        self.consumer.assign(starts)
        log.info("replaying %s as group %s up to offsets %s", self.topic, self.group, self.ends)

    # -- reading (on a worker thread: consume and the registry block) ------------------

    def read_batch(self, room: int) -> list[Work]:
        works: list[Work] = []
        for msg in self.consumer.consume(num_messages=room, timeout=0.2):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka consumer error: %s", err.str())
                continue
            work = self._settle(msg)
            if work is not None:
                works.append(work)
        self.dlq.poll(0)
        if self.remaining:
            # A partition can end on an offset that is never delivered (a deleted
            # segment, a control record): its position past the end is what counts.
            for tp in self.consumer.position([KafkaTP(self.topic, p) for p in self.remaining]):
                if tp.offset >= self.ends[tp.partition]:
                    self._partition_done(tp.partition)
        return works

    def _settle(self, msg: Message) -> Work | None:
        partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
        end = self.ends[partition]
        if offset >= end:
            self._partition_done(partition)
            return None
        if offset == end - 1:
            self._partition_done(partition)
        tp = (self.topic, partition)
        epoch = self.epochs[partition]
        self.tracker.add(tp, offset)
        self.read += 1
        raw = msg.headers()
        headers: Headers = list(raw.items()) if isinstance(raw, dict) else raw
        if not self.filter.matches(msg.timestamp()[1], headers):
            self.filtered_out += 1
            self.tracker.finish(tp, offset, epoch)  # left in the topic, on purpose
            return None
        origin = Origin.of(headers)
        ctx = {"topic": origin.topic, "partition": origin.partition, "offset": origin.offset}
        try:
            if not any(spec.matches(origin.topic) for spec in self.settings.topics):
                raise _NotConfigured(f"topic {origin.topic!r} is not in this config's topics")
            result = self.preparer(origin.topic, msg.value())
        except TransientError as exc:
            self.state.fail(f"{exc}; stopped, run the replay again when it is back")
            return None
        except RecordError as exc:
            log.warning("failed again (%s): %s", exc.stage, exc, extra=ctx)
            self.dlq.publish(
                key=msg.key(), value=msg.value(), original_headers=origin.headers,
                headers=origin.error_headers(
                    stage=exc.stage, exception=type(exc).__name__, message=str(exc),
                    rule=exc.rule,
                ),
                on_done=lambda: self.tracker.finish(tp, offset, epoch),
            )  # fmt: skip
            return None
        if not result.events:
            self.metrics.skipped(result.skipped_by or "no-match")
            self.tracker.finish(tp, offset, epoch)
            return None
        self.sink.origins[(tp, offset)] = origin
        lane = lane_for(self.settings.delivery.ordering, tp, offset, result.events[0].guest_key)
        return Work(tp, offset, epoch, msg.key(), msg.value(), origin.headers, lane, result.events)

    def _partition_done(self, partition: int) -> None:
        if partition in self.remaining:
            self.remaining.discard(partition)
            self.consumer.pause([KafkaTP(self.topic, partition)])

    # -- commits ------------------------------------------------------------------------

    def commit(self) -> None:
        offsets = self.tracker.committable()
        if not offsets or self.state.fatal_exit is not None:
            return
        metadata = commit_metadata(f"{self.instance} replay")
        tps = [KafkaTP(t, p, off, metadata=metadata) for (t, p), off in offsets.items()]
        self.consumer.commit(offsets=tps, asynchronous=False)
        self.tracker.mark_committed(offsets)
        self.committed.update({p: off for (_, p), off in offsets.items()})

    # -- the run ------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            await asyncio.to_thread(self.assign)
        except ReplayError as exc:
            log.error("%s", exc)
            self.consumer.close()
            return 1
        ceiling = self.settings.delivery.max_buffered_records
        batch = self.settings.kafka.poll_batch
        async with delivery_sender(self.settings, self.mapper) as sender:
            dispatcher = Dispatcher(
                sender, self.sink, self.tracker, self.settings.delivery, self.state, self.metrics
            )
            dispatcher.start()
            try:
                next_commit = time.monotonic() + self.settings.kafka.commit_interval_seconds
                while self.remaining and not self._stopped():
                    room = min(batch, ceiling - self.tracker.pending)
                    if room <= 0:
                        self.dlq.poll(0)
                        await asyncio.sleep(0.05)
                        continue
                    works = await asyncio.to_thread(self.read_batch, room)
                    if works:
                        dispatcher.submit(works)
                    if time.monotonic() >= next_commit:
                        await asyncio.to_thread(self.commit)
                        next_commit = time.monotonic() + self.settings.kafka.commit_interval_seconds
                while self.tracker.pending and not self._stopped():
                    self.dlq.poll(0)
                    await asyncio.sleep(0.05)
            finally:
                await dispatcher.stop()
        await asyncio.to_thread(self._finish)
        return 1 if self._stopped() else 0

    def _stopped(self) -> bool:
        return self.state.halted_reason is not None or self.state.fatal_exit is not None

    def _finish(self) -> None:
        if self.dlq.flush(30.0):
            self.state.fail("dead-letter writes were not acknowledged in 30s")
        try:
            self.commit()
        finally:
            self.consumer.close()

    def summary(self) -> str:
        def total(name: str) -> int:
            """Sum over every label of counter ``name`` (its ``_total`` samples)."""
            return sum(
                int(sample.value)
                for metric in self.metrics.registry.collect()
                for sample in metric.samples
                if sample.name == name
            )

        failed = total("cdp_connector_records_dead_lettered_total")
        skipped = total("cdp_connector_records_skipped_total")
        lines = [
            f"replay-dlq: topic {self.topic}, group {self.group}",
            f"  read                {self.read}",
            f"  filtered out        {self.filtered_out}  (left in the topic)",
            f"  delivered           {total('cdp_connector_records_delivered_total')}",
            f"  skipped by a rule   {skipped}",
            f"  failed again        {failed}  (written back with {REPLAY_ATTEMPTS})",
            f"  committed           {self.committed or 'nothing'}",
        ]
        if self.state.halted_reason is not None:
            lines.append(f"  STOPPED: {self.state.halted_reason}; unfinished records stay")
        return "\n".join(lines)


class ReplayError(Exception):
    """The replay cannot start (the dead-letter topic is missing or unreachable)."""


class _NotConfigured(RecordError):
    stage = "replay"


def main(settings: Settings, options: ReplayOptions) -> int:
    """Entry point for ``cdp-connector replay-dlq``."""
    replayer = Replayer(settings, options)
    code = asyncio.run(replayer.run())
    print(replayer.summary())
    return code
