"""``cdp-connector replay-dlq``: send dead letters through decode → map → deliver again.

After an operator fixed the cause (a mapping rule, the credentials, a schema), the
dead-letter topic is read by its own consumer group (``<group_id>.dlq-replay`` by
default) from its committed offsets up to the end of each partition *as of start*, and
every record that passes the filter goes through the same stages as ``run``
(``Settle``, ``Dispatcher``, ``DeadLetterQueue``, ``Committer``; wired by
``connector.pipeline.replay``) under the same guarantee: the replay group's offset
moves past a record only when it has an outcome — delivered, skipped by a rule, left
alone by the filter, or written back to the dead-letter topic (write acknowledged)
with fresh error headers and ``cdp.errors.replay.attempts`` one higher. Nothing is
lost; the records written back lie past the end it stops at, so one run never loops.
Of a record with several events, those its dead letter names delivered
(``cdp.errors.events.delivered``) are not posted again, only the rest. Commits carry
the finished offsets above the commit point, as ``run``'s do, so a replay run again
after a stop does not post again what the earlier one finished.

A 401/403, retries exhausted in ``halt`` mode, or a schema registry that is down stops
the run (exit 1) with unfinished records uncommitted: run it again later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jmespath
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTP

from connector.delivery.dispatcher import Dispatcher
from connector.errors import ConfigError, ConnectorError
from connector.kafka.commits import Committer, committed_offsets
from connector.kafka.errors import message_error
from connector.observability import Metrics
from connector.offsets import metadata as offset_metadata
from connector.offsets.tracker import ALREADY_FINISHED, OffsetTracker
from connector.records import Headers, Work
from connector.run_state import RunState
from connector.settle.deadletter import REPLAY_ATTEMPTS, DeadLetterQueue, Origin, delivered_events
from connector.settle.stage import Settle
from connector.source.kafka_source import headers, record_of
from connector.source.settings import SourceSettings

__all__ = [
    "DlqReader",
    "RecordFilter",
    "ReplayError",
    "ReplayOptions",
    "parse_time",
]

log = logging.getLogger(__name__)


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
        """Whether a dead letter is replayed: inside ``--since``/``--until`` (by its
        timestamp) and ``--filter`` holds on its headers."""
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


class DlqReader:
    """The reader of ``replay-dlq``: the dead-letter topic up to its end as of start.

    Built by ``connector.pipeline.replay``; each record that passes the filter goes
    through the same ``Settle``, dead-letter queue and ``Committer`` as ``run``. The
    settle ``wait`` gives up at once: a dependency that is down stops the replay."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        group: str,
        settle: Settle,
        tracker: OffsetTracker,
        committer: Committer,
        deadletter: DeadLetterQueue,
        state: RunState,
        options: ReplayOptions,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.group = group
        self._settle = settle
        self._tracker = tracker
        self._committer = committer
        self._dlq = deadletter
        self._state = state
        self._filter = RecordFilter(options)
        self._timeout = options.timeout
        self.ends: dict[int, int] = {}
        self.remaining: set[int] = set()
        self.epochs: dict[int, int] = {}
        self.read = 0
        self.filtered_out = 0
        self.finished_before = 0

    def assign(self) -> None:
        """Fix the end of each partition now; start from the group's committed offsets."""
        timeout = self._timeout
        try:
            meta = self.consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        except KafkaException as exc:
            raise ReplayError(f"no metadata for {self.topic!r}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error else "no partitions"
            raise ReplayError(f"dead-letter topic {self.topic!r} unavailable: {why}")
        parts = sorted(meta.partitions)
        committed = committed_offsets(
            self.consumer, [KafkaTP(self.topic, p) for p in parts], timeout
        )
        starts: list[KafkaTP] = []
        for tp in committed:
            low, high = self.consumer.get_watermark_offsets(
                KafkaTP(self.topic, tp.partition), timeout
            )
            start = tp.offset if tp.offset >= 0 else low
            self.ends[tp.partition] = high
            # Dead letters an earlier run finished above its commit point are not posted.
            done = offset_metadata.decode(tp.metadata, tp.offset) if tp.offset >= 0 else ()
            self.epochs[tp.partition] = self._tracker.assign(
                (self.topic, tp.partition), tp.offset if tp.offset >= 0 else None, done
            )
            if start < high:
                self.remaining.add(tp.partition)
            starts.append(
                KafkaTP(self.topic, tp.partition, start if start >= 0 else OFFSET_BEGINNING)
            )
        self.consumer.assign(starts)
        log.info("replaying %s as group %s up to offsets %s", self.topic, self.group, self.ends)

    # -- reading (on a worker thread: consume and the registry block) ------------------

    def read_batch(self, room: int) -> list[Work]:
        """Read up to ``room`` dead letters and settle them; the work for the dispatcher.
        On a worker thread; a dependency that stays down fails the run (``RunState.fail``)."""
        works: list[Work] = []
        for msg in self.consumer.consume(num_messages=room, timeout=0.2):
            if (err := msg.error()) is not None:
                message_error(self._state, err)
                continue
            try:
                work = self._read(msg)
            except ConnectorError as exc:  # only a retriable one reaches here: settle gave up
                self._state.fail(f"{exc}; stopped, run the replay again when it is back")
                break
            if work is not None:
                works.append(work)
        self._dlq.poll(0)
        if self.remaining:
            # A partition can end on an offset that is never delivered (a deleted
            # segment, a control record): its position past the end is what counts.
            for tp in self.consumer.position([KafkaTP(self.topic, p) for p in self.remaining]):
                if tp.offset >= self.ends[tp.partition]:
                    self._partition_done(tp.partition)
        return works

    def _read(self, msg: Message) -> Work | None:
        partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
        end = self.ends[partition]
        if offset >= end:
            self._partition_done(partition)
            return None
        if offset == end - 1:
            self._partition_done(partition)
        tp = (self.topic, partition)
        epoch = self.epochs[partition]
        if self._tracker.admit(tp, offset) == ALREADY_FINISHED:
            self.finished_before += 1  # an earlier run finished it (commit metadata)
            return None
        self.read += 1
        own = headers(msg)
        if not self._filter.matches(msg.timestamp()[1], own):
            self.filtered_out += 1
            self._tracker.finish(tp, offset, epoch)  # left in the topic, on purpose
            return None
        topic = Origin.of(own).topic  # decoded and mapped as a record of its first topic
        work = self._settle.take(record_of(msg, tp, offset, epoch, own, topic))
        if work is not None:  # events the dead letter says were delivered are not posted
            work.delivered = delivered_events(own, work.events)
        return work

    def _partition_done(self, partition: int) -> None:
        if partition in self.remaining:
            self.remaining.discard(partition)
            self.consumer.pause([KafkaTP(self.topic, partition)])

    def commit(self) -> None:
        """Commit what the tracker allows, synchronously (the periodic commit and ``finish``)."""
        self._committer.commit(self.consumer, asynchronous=False)

    # -- the run ------------------------------------------------------------------------

    async def run(self, dispatcher: Dispatcher, settings: SourceSettings) -> int:
        """Read to the ends, hand work to ``dispatcher``, drain, commit; the exit code."""
        ceiling = settings.max_buffered_records
        batch = settings.poll_batch
        interval = settings.commit_interval
        next_commit = time.monotonic() + interval
        while self.remaining and not self.stopped:
            room = min(batch, ceiling - self._tracker.pending)
            if room <= 0:
                self._dlq.poll(0)
                await asyncio.sleep(0.05)
                continue
            works = await asyncio.to_thread(self.read_batch, room)
            if works:
                dispatcher.submit(works)
            if time.monotonic() >= next_commit:
                await asyncio.to_thread(self.commit)
                next_commit = time.monotonic() + interval
        while self._tracker.pending and not self.stopped:
            self._dlq.poll(0)
            await asyncio.sleep(0.05)
        return 1 if self.stopped else 0

    @property
    def stopped(self) -> bool:
        """Halted or failed: reading stops, and the replay exits 1."""
        return self._state.halted_reason is not None or self._state.fatal_exit is not None

    def finish(self) -> None:
        """After the dispatcher stopped: wait for dead-letter writes, commit, close."""
        if self._dlq.flush(30.0):
            self._state.fail("dead-letter writes were not acknowledged in 30s")
        try:
            self.commit()
        finally:
            self.consumer.close()

    def summary(self, metrics: Metrics) -> str:
        """The report printed at the end: read, filtered, delivered, failed again, committed."""

        def total(name: str) -> int:
            """Sum over every label of counter ``name`` (its ``_total`` samples)."""
            return sum(
                int(sample.value)
                for metric in metrics.registry.collect()
                for sample in metric.samples
                if sample.name == name
            )

        failed = total("cdp_connector_records_dead_lettered_total")
        skipped = total("cdp_connector_records_skipped_total")
        committed = {p: off for (_, p), off in self._committer.last.items()}
        lines = [
            f"replay-dlq: topic {self.topic}, group {self.group}",
            f"  read                {self.read}",
            f"  filtered out        {self.filtered_out}  (left in the topic)",
            f"  finished before     {self.finished_before}  (by an earlier run, not posted)",
            f"  delivered           {total('cdp_connector_records_delivered_total')}",
            f"  skipped by a rule   {skipped}",
            f"  failed again        {failed}  (written back with {REPLAY_ATTEMPTS})",
            f"  committed           {committed or 'nothing'}",
        ]
        if self._state.halted_reason is not None:
            lines.append(f"  STOPPED: {self._state.halted_reason}; unfinished records stay")
        return "\n".join(lines)


class ReplayError(ConnectorError):
    """The replay cannot start (the dead-letter topic is missing or unreachable)."""
