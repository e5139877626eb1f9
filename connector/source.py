"""Source: the Kafka consumer, on its own thread, off the event loop.

This thread owns every call into the consumer: poll, pause/resume, commits and
the rebalance callbacks (which librdkafka runs inside ``consume``). Per batch it
decodes and maps each record (``prepare``), settles what needs no HTTP (skips and
decode/map failures, which go to the dead-letter topic), and hands the rest to
the dispatcher on the loop. It pauses all partitions while the records held
(read but without an outcome) reach ``max_buffered_records``, or while delivery
cannot make progress (halted, circuit open), and resumes when that clears.

Commits, in order of the guarantee they keep:
1. the tracker says which offsets have every earlier record finished;
2. periodically those are committed asynchronously;
3. on revoke, after dispatch released the partitions, synchronously;
4. on shutdown, after a bounded drain, synchronously, then the consumer leaves the group.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTP

from connector import __version__
from connector.config import Settings
from connector.deadletter import DeadLetterQueue, error_headers
from connector.dispatch import Dispatcher, Headers, Work, lane_for
from connector.errors import RecordError, TransientError
from connector.mapping import MapResult
from connector.offsets import OffsetTracker, TopicPartition
from connector.state import RunState

log = logging.getLogger(__name__)

Prepare = Callable[[str, bytes | None], MapResult]
RESUME_FRACTION = 0.5  # resume once held records fall to half the ceiling


def commit_metadata(instance: str) -> str:
    """What Kafka's consumer-groups tool shows beside each committed offset."""
    return f"cdp-connector/{__version__} {instance}"


class KafkaSource:
    """Runs the consume loop on a thread and settles what it can without HTTP."""

    def __init__(
        self,
        settings: Settings,
        prepare: Prepare,
        tracker: OffsetTracker,
        deadletter: DeadLetterQueue,
        dispatcher: Dispatcher,
        loop: asyncio.AbstractEventLoop,
        state: RunState,
        instance: str,
        stats_cb: Callable[[str], None] | None = None,
        on_records: Callable[[str, int], None] | None = None,
        on_commit: Callable[[bool], None] | None = None,
        on_skipped: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._prepare = prepare
        self._tracker = tracker
        self._dlq = deadletter
        self._dispatcher = dispatcher
        self._loop = loop
        self._state = state
        self._metadata = commit_metadata(instance)
        self._on_records = on_records or (lambda _topic, _n: None)
        self._on_commit = on_commit or (lambda _ok: None)
        self._on_skipped = on_skipped or (lambda _rule: None)
        self._stop = threading.Event()
        self._paused = False
        self._assigned: set[TopicPartition] = set()
        conf: dict[str, Any] = {
            # librdkafka prefetches up to 64 MiB by default, outside max_buffered_records;
            # 16 MiB still keeps a consume(500) loop fed (docs/benchmarks.md). Overridable.
            "queued.max.messages.kbytes": 16384,
            **settings.kafka.consumer_conf(),
            **settings.kafka.member_conf(),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": "cooperative-sticky",
            "error_cb": self._on_error,
            "client.id": f"cdp-connector-{instance}",
            "logger": logging.getLogger("librdkafka"),  # through logging: JSON in containers
            # Served inside consume(): the broker's answer to every commit, sync or async.
            "on_commit": self._on_committed,
        }
        if stats_cb is not None:
            conf.setdefault("statistics.interval.ms", 5000)  # kafka.client may set it
            conf["stats_cb"] = stats_cb
        self._consumer = Consumer(conf)
        self.thread = threading.Thread(target=self._run, name="kafka-source", daemon=True)

    # -- control from other threads --------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop reading; the thread drains, commits and leaves the group."""
        self._stop.set()

    @property
    def paused(self) -> bool:
        return self._paused

    # -- the thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._consume_loop()
        except Exception as exc:
            log.exception("consumer thread failed")
            self._state.fail(f"consumer thread failed: {exc!r}")
        finally:
            self._shutdown()

    def _consume_loop(self) -> None:
        subscriptions = [t.subscription for t in self._settings.topics]
        self._consumer.subscribe(
            subscriptions, on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        self._state.subscribed = True
        interval = self._settings.kafka.commit_interval_seconds
        batch = self._settings.kafka.poll_batch
        ceiling = self._settings.delivery.max_buffered_records
        next_commit = time.monotonic() + interval
        while not self._stop.is_set() and self._state.fatal_exit is None:
            self._apply_backpressure()
            # Never read past the ceiling: held records stay within max_buffered_records.
            room = max(1, min(batch, ceiling - self._tracker.pending))
            messages = self._consumer.consume(num_messages=room, timeout=0.1)
            self._dlq.poll(0)
            if messages:
                self._state.broker_down_since = None
                self._handle(messages)
            if time.monotonic() >= next_commit:
                self._commit(asynchronous=True)
                next_commit = time.monotonic() + interval

    def _handle(self, messages: list[Message]) -> None:
        works: list[Work] = []
        ordering = self._settings.delivery.ordering
        counts: dict[str, int] = {}
        for msg in messages:
            if (err := msg.error()) is not None:
                self._on_message_error(err)
                continue
            topic, partition, offset = _coords(msg)
            tp = (topic, partition)
            epoch = self._tracker.add(tp, offset)
            if epoch is None:
                continue  # not (or no longer) ours
            counts[topic] = counts.get(topic, 0) + 1
            try:
                result = self._prepare_with_retry(msg)
            except RecordError as exc:
                self._dead_letter(msg, exc, epoch)
                continue
            if not result.events:
                self._tracker.finish(tp, offset, epoch)  # skipped by a rule: an outcome too
                self._on_skipped(result.skipped_by or "no-match")
                continue
            lane = lane_for(ordering, tp, offset, result.events[0].guest_key)
            works.append(
                Work(tp, offset, epoch, msg.key(), msg.value(), _headers(msg), lane, result.events)
            )
        for topic, n in counts.items():
            self._on_records(topic, n)
        if works:
            self._loop.call_soon_threadsafe(self._dispatcher.submit, works)

    def _prepare_with_retry(self, msg: Message) -> MapResult:
        """Decode and map; a dependency that is down (schema registry) is waited out
        here, with consumption paused, instead of dead-lettering good records."""
        delay = 0.5
        topic, partition, offset = _coords(msg)
        while True:
            try:
                result = self._prepare(topic, msg.value())
            except TransientError as exc:
                self._state.degraded_reason = str(exc)
                log.warning(
                    "retrying in %.1fs: %s", delay, exc,
                    extra={"topic": topic, "partition": partition, "offset": offset},
                )  # fmt: skip
                self._pause()
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 30.0)
                continue
            if self._state.degraded_reason is not None:
                self._state.degraded_reason = None
            return result

    def _dead_letter(self, msg: Message, exc: RecordError, epoch: int) -> None:
        topic, partition, offset = _coords(msg)
        log.warning(
            "dead-lettering record (%s): %s",
            exc.stage,
            exc,
            extra={"topic": topic, "partition": partition, "offset": offset},
        )
        self._dlq.publish(
            key=msg.key(),
            value=msg.value(),
            original_headers=_headers(msg),
            headers=error_headers(
                topic,
                partition,
                offset,
                stage=exc.stage,
                exception=type(exc).__name__,
                message=str(exc),
                rule=exc.rule,
            ),
            on_done=lambda: self._tracker.finish((topic, partition), offset, epoch),
        )

    # -- back-pressure ----------------------------------------------------------

    def _apply_backpressure(self) -> None:
        ceiling = self._settings.delivery.max_buffered_records
        held = self._tracker.pending
        if not self._paused and (held >= ceiling or self._state.should_pause):
            self._pause()
        elif (
            self._paused
            and held <= ceiling * RESUME_FRACTION
            and not self._state.should_pause
            and self._state.degraded_reason is None
        ):
            self._resume()

    def _pause(self) -> None:
        if not self._paused and self._assigned:
            self._consumer.pause([KafkaTP(t, p) for t, p in self._assigned])
            log.info("paused consumption (%d records held)", self._tracker.pending)
        self._paused = True

    def _resume(self) -> None:
        if self._assigned:
            self._consumer.resume([KafkaTP(t, p) for t, p in self._assigned])
            log.info("resumed consumption (%d records held)", self._tracker.pending)
        self._paused = False

    # -- rebalance callbacks (run inside consume(), on this thread) ---------------

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        for p in partitions:
            tp = (p.topic, p.partition)
            self._tracker.assign(tp)
            self._assigned.add(tp)
        self._state.assigned = len(self._assigned)
        self._state.broker_down_since = None
        log.info("assigned %s", _names(partitions))
        if self._paused and partitions:
            # New partitions arrive resumed; keep them in step with the rest.
            self._paused = False

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        log.info("revoking %s", _names(partitions))
        self._release(tps)
        self._commit(asynchronous=False, tps=list(tps))
        self._forget(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Someone else owns them already: committing now could move their offsets.
        tps = {(p.topic, p.partition) for p in partitions}
        log.warning("lost %s without a clean revoke", _names(partitions))
        self._release(tps, timeout=0)
        self._forget(tps)

    def _release(self, tps: set[TopicPartition], timeout: float | None = None) -> None:
        """Stop dispatching the partitions' queued records; wait (bounded) for in-flight
        ones; then wait for their dead-letter acknowledgements."""
        timeout = self._settings.shutdown.drain_timeout_seconds if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self._dispatcher.release_partitions(tps), timeout), self._loop
        )
        try:
            future.result(timeout + 1)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("in-flight requests of revoked partitions did not finish in time")
        self._dlq.flush(min(timeout, 10.0))

    def _forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._tracker.revoke(tp)
            self._assigned.discard(tp)
        self._state.assigned = len(self._assigned)

    # -- commits -------------------------------------------------------------

    def _commit(self, *, asynchronous: bool, tps: list[TopicPartition] | None = None) -> None:
        offsets = self._tracker.committable(tps)
        if not offsets:
            return
        if self._state.fatal_exit is not None:
            return  # something is nowhere (DLQ write failed): commit nothing more
        kafka_offsets = [
            KafkaTP(t, p, off, metadata=self._metadata) for (t, p), off in offsets.items()
        ]
        try:
            if asynchronous:
                self._consumer.commit(offsets=kafka_offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=kafka_offsets, asynchronous=False)
        except KafkaException:
            # The on_commit callback counts and logs it (librdkafka reports sync commits
            # there too) and makes the tracker offer these offsets again.
            return
        self._tracker.mark_committed(offsets)

    def _on_committed(self, err: KafkaError | None, partitions: list[KafkaTP]) -> None:
        failed = err is not None or any(p.error is not None for p in partitions)
        if err is not None and err.code() == KafkaError._NO_OFFSET:
            return  # nothing to commit: not a commit at all
        self._on_commit(not failed)
        if failed:
            # Offer these partitions' commit points again with the next commit.
            self._tracker.forget_committed([(str(p.topic), int(p.partition)) for p in partitions])
            log.warning("offset commit failed: %s", err or [str(p.error) for p in partitions])

    # -- errors and shutdown ----------------------------------------------------

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._state.broker_down_since is None:
                self._state.broker_down_since = time.monotonic()
            log.error("all Kafka brokers are down: %s", err.str())
        elif err.fatal():
            self._state.fail(f"Kafka client fatal error: {err.str()}")
        else:
            log.warning("Kafka client error: %s", err.str())

    def _on_message_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            self._state.fail(f"Kafka consumer fatal error: {err.str()}")
        else:
            log.warning("Kafka consumer error: %s", err.str())

    def _shutdown(self) -> None:
        """Drain what is in flight (bounded), commit what finished, leave the group."""
        self._state.stopping = True
        deadline = time.monotonic() + self._settings.shutdown.drain_timeout_seconds
        while self._tracker.pending and time.monotonic() < deadline:
            if self._state.fatal_exit is not None:
                break
            self._dlq.poll(0.05)
            self._tracker.wait_drained(None, 0.05)
        if self._tracker.pending:
            log.warning("%d records unfinished at shutdown; they will be read again",
                        self._tracker.pending)  # fmt: skip
        self._dlq.flush(5.0)
        try:
            self._commit(asynchronous=False)
        finally:
            self._consumer.close()
            log.info("consumer closed; left the group")


def _coords(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (not an error) message."""
    return str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)


def _headers(msg: Message) -> Headers:
    headers = msg.headers()
    return list(headers.items()) if isinstance(headers, dict) else headers


def _names(partitions: list[KafkaTP]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
