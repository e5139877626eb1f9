"""Source: the Kafka consumer, on its own thread, off the event loop.

This thread owns every call into the consumer: consume, pause/resume, commits and
the rebalance callbacks (which librdkafka runs inside ``consume``). Each record is
settled (``connector.settle``) as it is read; the records with events to post go
to the dispatcher on the loop (``Handoff``). The consumer is built by a factory
the wiring place passes in (tests pass a fake), so every decision below is
unit-tested without a broker.

Back-pressure: all partitions pause while the records held (read, no outcome yet)
reach ``max_buffered_records`` or delivery cannot make progress (halted, circuit
open, a dependency down: ``RunState.pause_reason``), and resume once held records
fall to half the ceiling and that cleared. Pausing and resuming are logged with the
reason: at warning when delivery is blocked, at info for the buffer ceiling (normal
back-pressure under load).

Subscribed topic names are looked up at subscribe and after every assignment; those
the cluster does not have are ``RunState.missing_topics`` (not ready) until a later
assignment finds them.

Commits, in order of the guarantee they keep:
1. the tracker says which offsets have every earlier record finished;
2. periodically those are committed asynchronously;
3. on revoke, after dispatch released the partitions, synchronously;
4. on shutdown, after a bounded drain, synchronously, then the consumer leaves the group.
A failed commit is offered again with the next one (``Committer.on_committed``).
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
from connector.deadletter import DeadLetterQueue
from connector.dispatch import Dispatcher
from connector.logs import KAFKA_LOGGER
from connector.offsets import OffsetTracker, TopicPartition
from connector.records import Headers, Work
from connector.settle import Settle
from connector.state import RunState

log = logging.getLogger(__name__)
kafka_log = logging.getLogger(KAFKA_LOGGER)  # repeats are collapsed (connector.logs)

RESUME_FRACTION = 0.5  # resume once held records fall to half the ceiling
CEILING = "delivery.max_buffered_records reached"  # the pause reason of plain back-pressure
METADATA_TIMEOUT = 5.0  # seconds for the topic lookup at subscribe and assignment
# Builds the consumer from the source's own callbacks (error_cb), added to the config.
ConsumerFactory = Callable[[dict[str, Any]], Consumer]


def commit_metadata(instance: str) -> str:
    """What Kafka's consumer-groups tool shows beside each committed offset."""
    return f"cdp-connector/{__version__} {instance}"


class Committer:
    """Commits the tracker's finished offsets; the one commit path of ``run`` and
    ``replay-dlq``. ``on_committed`` is the consumer's ``on_commit`` callback."""

    def __init__(
        self,
        tracker: OffsetTracker,
        state: RunState,
        metadata: str,
        on_commit: Callable[[bool], None] | None = None,
    ) -> None:
        self._tracker = tracker
        self._state = state
        self._metadata = metadata
        self._on_commit = on_commit or (lambda _ok: None)
        self.last: dict[TopicPartition, int] = {}  # what was handed to Kafka, for summaries

    def commit(
        self, consumer: Consumer, *, asynchronous: bool, tps: list[TopicPartition] | None = None
    ) -> None:
        """Commit what moved (of ``tps``, all if None); nothing after a fatal failure."""
        offsets = self._tracker.committable(tps)
        if not offsets or self._state.fatal_exit is not None:
            return  # a fatal failure (DLQ write failed): nothing past it may be committed
        kafka_offsets = [
            KafkaTP(t, p, off, metadata=self._metadata) for (t, p), off in offsets.items()
        ]
        try:
            if asynchronous:  # two calls: the stubs type each form on its own
                consumer.commit(offsets=kafka_offsets, asynchronous=True)
            else:
                consumer.commit(offsets=kafka_offsets, asynchronous=False)
        except KafkaException:
            # on_committed counts and logs it (librdkafka reports sync commits there too);
            # not marked committed, so these offsets are offered again.
            return
        self._tracker.mark_committed(offsets)
        self.last.update(offsets)

    def on_committed(self, err: KafkaError | None, partitions: list[KafkaTP]) -> None:
        """The broker's answer to a commit, sync or async (served inside ``consume``)."""
        if err is not None and err.code() == KafkaError._NO_OFFSET:
            return  # nothing to commit: not a commit at all
        failed = err is not None or any(p.error is not None for p in partitions)
        self._on_commit(not failed)
        if failed:
            # Offer these partitions' commit points again with the next commit.
            self._tracker.forget_committed([(str(p.topic), int(p.partition)) for p in partitions])
            log.warning("offset commit failed: %s", err or [str(p.error) for p in partitions])


class Handoff:
    """The consumer thread's way to the dispatcher on the event loop."""

    def __init__(self, dispatcher: Dispatcher, loop: asyncio.AbstractEventLoop) -> None:
        self._dispatcher = dispatcher
        self._loop = loop

    def submit(self, works: list[Work]) -> None:
        self._loop.call_soon_threadsafe(self._dispatcher.submit, works)

    def release(self, tps: set[TopicPartition], timeout: float) -> None:
        """Drop the partitions' queued records, wait (bounded) for their in-flight ones."""
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self._dispatcher.release_partitions(tps), timeout), self._loop
        )
        try:
            future.result(timeout + 1)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("in-flight requests of revoked partitions did not finish in time")


class KafkaSource:
    """Runs the consume loop on a thread: consume, back-pressure, rebalances, commits."""

    def __init__(
        self,
        settings: Settings,
        make_consumer: ConsumerFactory,
        settle: Settle,
        tracker: OffsetTracker,
        deadletter: DeadLetterQueue,
        handoff: Handoff,
        committer: Committer,
        state: RunState,
        on_records: Callable[[str, int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._settle = settle
        self._tracker = tracker
        self._dlq = deadletter
        self._handoff = handoff
        self._committer = committer
        self._state = state
        self._stop = threading.Event()
        self._on_records = on_records or (lambda _topic, _n: None)
        self._paused = False
        self._pause_assigned = False  # partitions arrived while paused: pause them next round
        self._paused_for: str | None = None  # the reason the last pause line gave
        self._paused_at = 0.0
        self._topics_due = False  # an assignment happened: look the topics up again
        self._assigned: set[TopicPartition] = set()
        self._next_commit = 0.0
        self._consumer = make_consumer({"error_cb": lambda err: client_error(state, err)})
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

    def wait_out(self, delay: float) -> bool:
        """Settle's ``wait`` while a dependency is down: consumption pauses (and stays
        paused while ``degraded_reason`` is set); True when the source is stopping."""
        self._pause(self._state.pause_reason or "a dependency is down")
        return self._stop.wait(delay)

    # -- the thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._subscribe()
            while not self._stop.is_set() and self._state.fatal_exit is None:
                self.step()
        except Exception as exc:
            log.exception("consumer thread failed")
            self._state.fail(f"consumer thread failed: {exc!r}")
        finally:
            self.shutdown()

    def _subscribe(self) -> None:
        subscriptions = [t.subscription for t in self._settings.topics]
        self._consumer.subscribe(
            subscriptions, on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        self._state.subscribed = True
        self._check_topics()
        self._next_commit = time.monotonic() + self._settings.kafka.commit_interval_seconds

    def step(self) -> None:
        """One round of the loop: back-pressure, one ``consume``, a commit when due.

        Called by the thread's loop (unit tests call it by hand); an exception ends
        the thread: ``RunState.fail``, then ``shutdown``."""
        self._apply_backpressure()
        # Never read past the ceiling: held records stay within max_buffered_records.
        ceiling = self._settings.delivery.max_buffered_records
        room = max(1, min(self._settings.kafka.poll_batch, ceiling - self._tracker.pending))
        messages = self._consumer.consume(num_messages=room, timeout=0.1)
        self._dlq.poll(0)
        if self._topics_due:
            self._topics_due = False
            self._check_topics()
        if messages:
            self._state.broker_down_since = None
            self._handle(messages)
        if time.monotonic() >= self._next_commit:
            self._committer.commit(self._consumer, asynchronous=True)
            self._next_commit = time.monotonic() + self._settings.kafka.commit_interval_seconds

    def _handle(self, messages: list[Message]) -> None:
        works: list[Work] = []
        counts: dict[str, int] = {}
        for msg in messages:
            if (err := msg.error()) is not None:
                message_error(self._state, err)
                continue
            topic = str(msg.topic())
            tp, offset = (topic, int(msg.partition() or 0)), int(msg.offset() or 0)
            epoch = self._tracker.add(tp, offset)
            if epoch is None:
                continue  # not (or no longer) ours
            counts[topic] = counts.get(topic, 0) + 1
            work = self._settle.take(tp, offset, epoch, msg.key(), msg.value(), headers(msg), topic)
            if work is not None:
                works.append(work)
        for topic, n in counts.items():
            self._on_records(topic, n)
        if works:
            self._handoff.submit(works)

    # -- back-pressure ----------------------------------------------------------

    def _apply_backpressure(self) -> None:
        if self._pause_assigned:
            # Assigned inside consume() while paused, they arrived resumed: pause them with
            # the rest, so one resume (below) later lets every partition go again.
            self._pause_assigned = False
            self._consumer.pause([KafkaTP(t, p) for t, p in self._assigned])
        ceiling = self._settings.delivery.max_buffered_records
        held = self._tracker.pending
        blocked = self._state.pause_reason
        if blocked is not None or (not self._paused and held >= ceiling):
            self._pause(blocked or CEILING)
        elif self._paused and held <= ceiling * RESUME_FRACTION:
            self._resume()

    def _pause(self, why: str) -> None:
        """Pause every assigned partition (if not paused yet); one line per reason, so a
        pause at the buffer ceiling that becomes an outage says so."""
        if not self._paused and self._assigned:
            self._consumer.pause([KafkaTP(t, p) for t, p in self._assigned])
        self._paused = True
        if why != self._paused_for and self._assigned:
            level = logging.INFO if why == CEILING else logging.WARNING
            log.log(level, "paused consumption: %s (%d records held)", why, self._tracker.pending)
            if self._paused_for is None:
                self._paused_at = time.monotonic()
            self._paused_for = why

    def _resume(self) -> None:
        if self._assigned:
            self._consumer.resume([KafkaTP(t, p) for t, p in self._assigned])
        if self._paused_for is not None:
            level = logging.INFO if self._paused_for == CEILING else logging.WARNING
            log.log(level, "resumed consumption after %.1fs paused (%s; %d records held)",
                    time.monotonic() - self._paused_at, self._paused_for,
                    self._tracker.pending)  # fmt: skip
            self._paused_for = None
        self._paused = False

    def _check_topics(self) -> None:
        """Which subscribed topic names the cluster lacks (``RunState.missing_topics``).

        Patterns are not looked up: matching nothing yet is what a pattern may do. A
        broker that does not answer leaves the last finding (brokers down is its own
        reason)."""
        names = [t.name for t in self._settings.topics if t.name is not None]
        if not names:
            return
        try:
            found = self._consumer.list_topics(timeout=METADATA_TIMEOUT).topics
        except KafkaException as exc:
            log.warning("could not look up the subscribed topics: %s", exc)
            return
        missing = tuple(n for n in names if n not in found or found[n].error is not None)
        if missing != self._state.missing_topics:
            if missing:
                log.warning("subscribed topics missing, not read until created: %s",
                            ", ".join(missing))  # fmt: skip
            else:
                log.warning("subscribed topics found: %s", ", ".join(self._state.missing_topics))
        self._state.missing_topics = missing

    # -- rebalance callbacks (run inside consume(), on this thread) ---------------

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        for p in partitions:
            tp = (p.topic, p.partition)
            self._tracker.assign(tp)
            self._assigned.add(tp)
        self._state.assigned = len(self._assigned)
        self._state.broker_down_since = None
        log.info("assigned %s", _names(partitions))
        # A rebalance follows a topic's creation. Looked up after consume() returns:
        # confluent-kafka aborts on a blocking call (and its log callbacks) in here.
        self._topics_due = True
        if self._paused and partitions:
            self._pause_assigned = True  # they arrive resumed; the next round pauses them

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        log.info("revoking %s", _names(partitions))
        self._release(tps, self._settings.shutdown.drain_timeout_seconds)
        self._committer.commit(self._consumer, asynchronous=False, tps=list(tps))
        self._forget(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Someone else owns them already: committing now could move their offsets.
        tps = {(p.topic, p.partition) for p in partitions}
        log.warning("lost %s without a clean revoke", _names(partitions))
        self._release(tps, 0)
        self._forget(tps)

    def _release(self, tps: set[TopicPartition], timeout: float) -> None:
        """Stop dispatching the partitions' records (bounded wait for in-flight ones),
        then wait for their dead-letter acknowledgements."""
        self._handoff.release(tps, timeout)
        self._dlq.flush(min(timeout, 10.0))

    def _forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._tracker.revoke(tp)
            self._assigned.discard(tp)
        self._state.assigned = len(self._assigned)

    # -- shutdown ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Drain what is in flight (bounded), commit what finished, leave the group.

        Run by the thread when it ends; a failure to commit still closes the consumer."""
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
            self._committer.commit(self._consumer, asynchronous=False)
        finally:
            self._consumer.close()
            log.info("consumer closed; left the group")


def client_error(state: RunState, err: KafkaError) -> None:
    """The consumer's ``error_cb``: brokers down → not ready; fatal → stop.

    Logged through ``kafka_log``, whose repeats (and librdkafka's own line for the same
    error) collapse into one line per interval."""
    if err.code() == KafkaError._ALL_BROKERS_DOWN:
        if state.broker_down_since is None:
            state.broker_down_since = time.monotonic()
        kafka_log.error("all Kafka brokers are down: %s", err.str())
    elif err.fatal():
        state.fail(f"Kafka client fatal error: {err.str()}")
    elif err.code() == KafkaError._AUTHENTICATION:
        # librdkafka retries a refused SASL login forever; no retry can fix a password.
        state.fail(f"Kafka refused the credentials (kafka.client sasl.*): {err.str()}")
    else:
        kafka_log.warning("Kafka client error: %s", err.str())


def message_error(state: RunState, err: KafkaError) -> None:
    """An error ``consume`` handed over in place of a message."""
    if err.code() == KafkaError._PARTITION_EOF:
        return
    if err.fatal():
        state.fail(f"Kafka consumer fatal error: {err.str()}")
    else:
        kafka_log.warning("Kafka consumer error: %s", err.str())


def headers(msg: Message) -> Headers:
    """A consumed message's headers as a list (confluent-kafka may hand over a dict)."""
    raw = msg.headers()
    return list(raw.items()) if isinstance(raw, dict) else raw


def _names(partitions: list[KafkaTP]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
