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
fall to half the ceiling and that cleared. An open circuit does not pause while no
record is held (a revoke took them all): its probe needs a record to send. A partition
run too far ahead of its commit point (``OffsetTracker.accepts``) pauses on its own
until its commit point moves. Each pause and resume is logged with its reason: at
warning when delivery is blocked or a partition is held back, at info for the buffer
ceiling (normal back-pressure under load).

Subscribed topic names are looked up at subscribe and after every assignment; those
the cluster does not have are ``RunState.missing_topics`` (not ready) until a later
assignment finds them.

Commits, in order of the guarantee they keep:
1. the tracker says which offsets have every earlier record finished, and which
   above them are finished too; the latter travel in the commit metadata
   (``connector.offset_metadata``) and are read back on assignment, so records
   finished before are counted, not posted;
2. when something moved, at most every ``commit_interval_seconds``, asynchronously;
3. on revoke, after dispatch released the partitions and their requests in flight
   answered (bounded by ``drain_timeout_seconds``), synchronously;
4. on shutdown the same for every partition, once, within the drain timeout, with the
   consumer polled meanwhile (a fenced or expired member learns it and stops at
   once); then the consumer closes without waiting again.
A failed commit is offered again with the next one (``Committer.on_committed``).
After a fatal error (a fenced static member, a failed dead-letter write) no request
starts any more and nothing is committed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTP

from connector.commits import Committer, read_back
from connector.config import Settings
from connector.deadletter import DeadLetterQueue
from connector.drain import TAKEOVER_HOLD_SECONDS, DrainCommits
from connector.handoff import Handoff
from connector.kafka_errors import client_error, message_error
from connector.offsets import ALREADY_FINISHED, OffsetTracker, TopicPartition
from connector.pausing import PartitionPauses
from connector.records import Headers, Work
from connector.settle import Settle
from connector.state import RunState

log = logging.getLogger(__name__)

RESUME_FRACTION = 0.5  # resume once held records fall to half the ceiling
CEILING = "delivery.max_buffered_records reached"  # the pause reason of plain back-pressure
METADATA_TIMEOUT = 5.0  # seconds for the topic lookup at subscribe and after assignment
# Builds the consumer from the source's own callbacks (error_cb), added to the config.
ConsumerFactory = Callable[[dict[str, Any]], Consumer]
# Reading the group's committed offsets on assignment blocks the rebalance callback.
COMMITTED_TIMEOUT = 10.0
# After the drain: how long dead-letter writes may still be acknowledged.
FLUSH_GRACE = 1.0


class KafkaSource:
    """Runs the consume loop on a thread: consume, back-pressure, rebalances, commits.

    ``on_records(topic, n)`` counts records read; ``on_finished_before(n)`` counts
    records read again that had an outcome before (commit metadata): not posted."""

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
        on_finished_before: Callable[[int], None] | None = None,
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
        self._on_finished_before = on_finished_before or (lambda _n: None)
        self._paused = False  # the global pause: buffer ceiling, halt, outage, degraded
        self._paused_for: str | None = None  # the reason the last pause line gave
        self._paused_at = 0.0
        self._topics_due = False  # an assignment happened: look the topics up again
        self._assigned: set[TopicPartition] = set()
        self._next_commit = 0.0
        self._drain_deadline: float | None = None  # set when the shutdown drain starts
        self._drain_commits: DrainCommits | None = None
        self._hold_first_assignment = bool(settings.kafka.group_instance_id_env)
        self._consumer = make_consumer({"error_cb": lambda err: client_error(state, err)})
        self._pauses = PartitionPauses(self._consumer)
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
        self._apply_pauses()
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
        # Wait no longer than the next commit is due: it goes out on time when idle too.
        wait = min(0.1, max(0.0, self._next_commit - time.monotonic()))
        messages = self._consume(room, wait)
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

    def _consume(self, room: int, timeout: float) -> list[Message]:
        """``consume``; a fatal client error (confluent-kafka raises it here instead of
        calling ``error_cb``) fails the run instead of the thread."""
        try:
            return self._consumer.consume(num_messages=room, timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not isinstance(err, KafkaError) or not err.fatal():
                raise
            client_error(self._state, err)
            return []

    def _handle(self, messages: list[Message]) -> None:
        works: list[Work] = []
        counts: dict[str, int] = {}
        finished_before = 0
        for msg in messages:
            if (err := msg.error()) is not None:
                message_error(self._state, err)
                continue
            topic = str(msg.topic())
            tp, offset = (topic, int(msg.partition() or 0)), int(msg.offset() or 0)
            epoch = self._tracker.admit(tp, offset)
            if epoch <= 0:
                # Not (or no longer) ours, or finished before this assignment.
                finished_before += epoch == ALREADY_FINISHED
                continue
            counts[topic] = counts.get(topic, 0) + 1
            work = self._settle.take(tp, offset, epoch, msg.key(), msg.value(), headers(msg), topic)
            if work is not None:
                works.append(work)
        for topic, n in counts.items():
            self._on_records(topic, n)
        if finished_before:
            self._on_finished_before(finished_before)
        if works:
            self._handoff.submit(works)

    # -- back-pressure ----------------------------------------------------------

    def _apply_backpressure(self) -> None:
        ceiling = self._settings.delivery.max_buffered_records
        held = self._tracker.pending
        blocked = self._state.pause_reason
        if held == 0 and self._state.circuit_open and self._state.halted_reason is None:
            # Only a request can close the circuit (its half-open probe), and only a held
            # record makes one: with none held (a revoke took them all) reading stays on,
            # or the pause would wait for a probe that is never sent.
            blocked = self._state.degraded_reason
        if blocked is not None or (not self._paused and held >= ceiling):
            self._pause(blocked or CEILING)
        elif self._paused and held <= ceiling * RESUME_FRACTION:
            self._resume()
        self._apply_pauses()

    def _pause(self, why: str) -> None:
        """The global pause; one line per reason, so a pause at the buffer ceiling that
        becomes an outage says so."""
        self._paused = True
        if why != self._paused_for:
            level = logging.INFO if why == CEILING else logging.WARNING
            log.log(level, "paused consumption: %s (%d records held)", why, self._tracker.pending)
            if self._paused_for is None:
                self._paused_at = time.monotonic()
            self._paused_for = why

    def _resume(self) -> None:
        self._paused = False
        if self._paused_for is not None:
            level = logging.INFO if self._paused_for == CEILING else logging.WARNING
            log.log(level, "resumed consumption after %.1fs paused (%s; %d records held)",
                    time.monotonic() - self._paused_at, self._paused_for,
                    self._tracker.pending)  # fmt: skip
            self._paused_for = None

    def _apply_pauses(self) -> None:
        """Every partition paused while the global pause holds (or the source is
        stopping), else the ones the tracker blocks (too far ahead of their commit point)."""
        held_back = self._tracker.blocked_partitions() & self._assigned
        everything = self._paused or self._drain_deadline is not None
        self._pauses.apply(self._assigned, held_back, everything=everything)

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
        # While stopping nothing is posted any more: no lookup to hold the drain up.
        stopping = self._drain_deadline is not None
        if self._hold_first_assignment and not stopping:
            self._hold_first_assignment = False
            time.sleep(TAKEOVER_HOLD_SECONDS)  # a draining predecessor learns of its fence
        committed = {} if stopping else read_back(self._consumer, partitions, COMMITTED_TIMEOUT)
        restored = 0
        for p in partitions:
            tp = (p.topic, p.partition)
            offset, finished = committed.get(tp, (None, ()))
            self._tracker.assign(tp, offset, finished)
            restored += len(finished)
            self._assigned.add(tp)
            self._pauses.forget(tp)  # unknown: the next round sets it
        self._state.assigned = len(self._assigned)
        self._state.broker_down_since = None
        log.info("assigned %s (%d offsets above the commit points finished before)",
                 _names(partitions), restored)  # fmt: skip
        # A rebalance follows a topic's creation. Looked up after consume() returns:
        # list_topics from in here aborted the process (a confluent-kafka CallState
        # assertion) when librdkafka logged during it (kafka.client debug: all).
        self._topics_due = True

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        log.info("revoking %s", _names(partitions))
        self._release(tps, self._drain_left())
        self._committer.commit(self._consumer, asynchronous=False, tps=list(tps))
        self._forget(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Someone else owns them already: committing now could move their offsets.
        tps = {(p.topic, p.partition) for p in partitions}
        log.warning("lost %s without a clean revoke; stopped posting their records",
                    _names(partitions))  # fmt: skip
        self._handoff.release(tps, 0)
        self._forget(tps)

    def _drain_left(self) -> float:
        """How long a release may wait for requests in flight: the drain timeout, or
        at shutdown what is left of the one drain (so close()'s revoke does not wait
        again); nothing after a fatal failure (fenced: the requests were cancelled)."""
        if self._state.fatal_exit is not None:
            return 0.0
        if self._drain_deadline is None:
            return self._settings.shutdown.drain_timeout_seconds
        return max(0.0, self._drain_deadline - time.monotonic())

    def _release(self, tps: set[TopicPartition], timeout: float) -> None:
        """Stop dispatching the partitions' records (bounded wait for in-flight ones),
        then wait for their dead-letter acknowledgements."""
        if not self._handoff.release(tps, timeout):
            log.warning("requests of %d revoked partitions still in flight after %.1fs",
                        len(tps), timeout)  # fmt: skip
        self._dlq.flush(max(FLUSH_GRACE, min(timeout, 10.0)))

    def _forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._tracker.revoke(tp)
            self._assigned.discard(tp)
            self._pauses.forget(tp)
        self._state.assigned = len(self._assigned)

    # -- shutdown ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop posting, wait (once, within the drain timeout) for the requests in
        flight, commit what finished, close the consumer.

        Run by the thread when it ends. Records held but not yet posted are not waited
        for: the next owner reads them again. The consumer is polled during the wait,
        so a fenced or expired member stops at once; after a fatal failure nothing is
        waited for or committed. Requests still open at the end are cancelled. A
        failure to commit still closes the consumer."""
        self._state.stopping = True
        self._drain_deadline = time.monotonic() + self._settings.shutdown.drain_timeout_seconds
        with contextlib.suppress(KafkaException):  # after a fatal error: the consumer refuses
            self._apply_pauses()  # read nothing more; poll only for group events
        tps = set(self._assigned)
        fatal = self._state.fatal_exit is not None
        if self._settings.kafka.group_instance_id_env and not fatal:
            self._drain_commits = DrainCommits(self._committer, self._state)  # fence shows
        done = self._handoff.release(tps, 0 if fatal else self._drain_left(), self._poll_group)
        if not done or self._state.fatal_exit is not None:
            self._handoff.stop(FLUSH_GRACE)  # cancel what is still open
        if not done:
            log.warning("stopped posting with requests in flight (%s); their records will be "
                        "read again", self._state.fatal_exit or "drain timeout")  # fmt: skip
        if self._dlq.flush(max(FLUSH_GRACE, self._drain_left())):
            log.warning("dead-letter writes unacknowledged at shutdown; read again")
        try:
            self._committer.commit(self._consumer, asynchronous=False)
        finally:
            self._close()

    def _poll_group(self) -> bool:
        """During the drain: serve group events (fencing, revoke, lost) and dead-letter
        acknowledgements; True when the drain must end now (a fatal failure)."""
        messages = self._consume(self._settings.kafka.poll_batch, 0)
        for msg in messages:  # paused already: whatever still arrives is read again later
            if (err := msg.error()) is not None:
                message_error(self._state, err)
        self._dlq.poll(0)
        if self._drain_commits is not None and self._state.broker_down_since is None:
            self._drain_commits.due(self._consumer)  # a static member's fence shows at once
        return self._state.fatal_exit is not None

    def _close(self) -> None:
        """Leave the group (a static member does not leave: librdkafka keeps its
        partitions for ``session.timeout.ms``)."""
        try:
            self._consumer.close()
        except KafkaException as exc:  # a fatal error raised again: nothing to leave
            log.warning("consumer closed after a fatal error: %s", exc)
            return
        if self._state.fatal_exit is not None:
            log.info("consumer closed")
        elif self._settings.kafka.group_instance_id_env:
            log.info("consumer closed; a static member stays in the group: its partitions "
                     "wait session.timeout.ms for a member with its group.instance.id")  # fmt: skip
        else:
            log.info("consumer closed; left the group")


def headers(msg: Message) -> Headers:
    """A consumed message's headers as a list (confluent-kafka may hand over a dict)."""
    raw = msg.headers()
    return list(raw.items()) if isinstance(raw, dict) else raw


def _names(partitions: list[KafkaTP]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
