"""Source: the Kafka consumer, on its own thread, off the event loop.

This thread owns every call into the consumer: consume, pause/resume, commits and
the rebalance callbacks (which librdkafka runs inside ``consume``). Each record is
settled (``connector.settle.stage``) as it is read; the records with events to post go
to the dispatcher on the loop (``Handoff``). The consumer is built by a factory
the wiring place passes in (tests pass a fake), so every decision below is
unit-tested without a broker. The class is the thread's loop; each decision it
asks for each round lives beside it: back-pressure in ``connector.source.pausing``, the
subscribed-topic lookup in ``connector.kafka.topics``, the rebalance callbacks in
``connector.source.rebalance``, the shutdown drain in ``connector.source.drain``.

Pacing (``connector.delivery.flow``): each round reads and hands over at most
``kafka.poll_batch`` records, and only while fewer than twice ``delivery.max_in_flight``
handed-over records wait for a dispatch worker; otherwise the thread sleeps (without the
interpreter lock) until the workers have taken enough, at most until the next commit or
0.1 s, and then reads one step all the same. So the loop gets records as it posts them,
never ten thousand at once, and the thread's decode and map work comes in steps of a few
milliseconds: the loop, which needs the interpreter lock for every I/O callback, is never
held up longer than that.

Back-pressure (``pausing``): all partitions pause while the records held (read, no outcome yet)
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
   (``connector.offsets.metadata``) and are read back on assignment, so records
   finished before are counted, not posted;
2. when something moved, at most every ``commit_interval_seconds``, asynchronously;
   due time is checked between the records a round settles too, so a commit is never
   held back by a batch still being decoded and mapped;
3. on revoke (``rebalance``), after dispatch released the partitions and their requests in flight
   answered (bounded by ``drain_timeout_seconds``), synchronously;
4. on shutdown (``drain``) the same for every partition, once, within the drain timeout, with the
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

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTP

from connector.kafka.commits import Committer
from connector.kafka.errors import client_error, message_error
from connector.kafka.topics import check_subscribed
from connector.offsets.tracker import ALREADY_FINISHED, OffsetTracker, TopicPartition
from connector.records import ConsumedRecord, Headers, Work
from connector.run_state import RunState
from connector.settle.deadletter import DeadLetterQueue
from connector.settle.stage import Settle
from connector.source.drain import ShutdownDrain
from connector.source.handoff import Handoff
from connector.source.pausing import Backpressure, PartitionPauses
from connector.source.rebalance import Rebalance
from connector.source.settings import SourceSettings

__all__ = ["ConsumerFactory", "KafkaSource", "headers", "record_of"]

log = logging.getLogger(__name__)

# The longest the thread waits for the loop to want records before it reads one step
# anyway (rebalance callbacks and client errors are served only while it reads). Not
# ``poll_wait``: that one is how long a read waits for a batch to fill, and a room wait
# that short would read a step every few milliseconds whatever the loop has.
ROOM_WAIT = 0.1

# Builds the consumer from the source's own callbacks (error_cb), added to the config.
ConsumerFactory = Callable[[dict[str, Any]], Consumer]


class KafkaSource:
    """Runs the consume loop on a thread: consume, back-pressure, rebalances, commits.

    Built by the wiring place (``pipeline``); ``start``, ``stop`` and ``paused`` from
    other threads, everything else on its own thread.

    ``on_records(topic, n)`` counts records read; ``on_finished_before(n)`` counts
    records read again that had an outcome before (commit metadata): not posted;
    ``on_read(messages)`` hears each batch read, after it was settled (time lag)."""

    def __init__(
        self,
        settings: SourceSettings,
        make_consumer: ConsumerFactory,
        settle: Settle,
        tracker: OffsetTracker,
        deadletter: DeadLetterQueue,
        handoff: Handoff,
        committer: Committer,
        state: RunState,
        on_records: Callable[[str, int], None] | None = None,
        on_finished_before: Callable[[int], None] | None = None,
        on_read: Callable[[list[Message]], None] | None = None,
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
        self._on_read = on_read or (lambda _messages: None)
        self._backpressure = Backpressure(settings.max_buffered_records, tracker, state)
        self._next_commit = 0.0
        self._drain: ShutdownDrain | None = None  # set when the shutdown drain starts
        self._consumer = make_consumer({"error_cb": lambda err: client_error(state, err)})
        self._pauses = PartitionPauses(self._consumer)
        self._rebalance = Rebalance(
            self._consumer, tracker, self._pauses, handoff, deadletter, committer, state,
            hold_first=settings.static_member,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._run, name="kafka-source", daemon=True)

    # -- control from other threads --------------------------------------------

    def start(self) -> None:
        """Start the consumer thread (``pipeline.run``, after the dispatcher started)."""
        self.thread.start()

    def stop(self) -> None:
        """Stop reading; the thread drains, commits and leaves the group."""
        self._stop.set()

    @property
    def paused(self) -> bool:
        """Whether back-pressure has every partition paused now (the ``paused`` gauge)."""
        return self._backpressure.paused

    def wait_out(self, delay: float) -> bool:
        """Settle's ``wait`` while a dependency is down: consumption pauses (and stays
        paused while ``degraded_reason`` is set); True when the source is stopping."""
        self._backpressure.pause(self._state.pause_reason or "a dependency is down")
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
        check_subscribed(self._consumer, self._settings.topics, self._state)
        self._next_commit = time.monotonic() + self._settings.commit_interval

    def step(self) -> None:
        """One round of the loop: back-pressure, one ``consume``, a commit when due.

        Called by the thread's loop (unit tests call it by hand); an exception ends
        the thread: ``RunState.fail``, then ``shutdown``."""
        paused = self._backpressure.decide()
        self._apply_pauses()
        # Wait no longer than the next commit is due: it goes out on time when idle too.
        until_commit = max(0.0, self._next_commit - time.monotonic())
        # Below capacity a batch never fills, so this wait is what a record spends here.
        wait = min(self._settings.poll_wait, until_commit)
        if not paused and not self._handoff.wait_for_room(min(ROOM_WAIT, until_commit)):
            # The loop has enough to post; read one step anyway, so that rebalance
            # callbacks and errors are served while a slow lane holds records back
            # (the ceiling below still bounds what is held).
            wait = 0.0
        # Never read past the ceiling: held records stay within max_buffered_records.
        ceiling = self._settings.max_buffered_records
        room = max(1, min(self._settings.poll_batch, ceiling - self._tracker.pending))
        messages = self._consume(room, wait)
        self._dlq.poll(0)
        self._commit_when_due()
        if self._rebalance.topics_due:
            self._rebalance.topics_due = False
            check_subscribed(self._consumer, self._settings.topics, self._state)
        if messages:
            self._state.broker_down_since = None
            self._handle(messages)  # decode, map, hand over: one step, holding the lock
            self._on_read(messages)

    def _commit_when_due(self) -> None:
        """The periodic commit, once ``commit_interval_seconds`` passed since the last.

        Asked every round and after every record a round settles: a batch of
        ``poll_batch`` records takes 30 ms to settle on an idle machine and 0.1-0.4 s on
        a busy one (a young process reading its backlog), and a commit held behind it
        would leave that much more finished work to be posted again after a crash."""
        if time.monotonic() >= self._next_commit:
            self._committer.commit(self._consumer, asynchronous=True)
            self._next_commit = time.monotonic() + self._settings.commit_interval

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
        read: list[tuple[Message, str, tuple[str, int], int]] = []
        for msg in messages:
            if (err := msg.error()) is not None:
                message_error(self._state, err)
                continue
            topic = str(msg.topic())
            read.append((msg, topic, (topic, int(msg.partition() or 0)), int(msg.offset() or 0)))
        # One tracker lock for the batch, not one per record (the loop's finish waits on it).
        epochs = self._tracker.admit_many([(tp, offset) for _, _, tp, offset in read])
        for (msg, topic, tp, offset), epoch in zip(read, epochs, strict=True):
            if epoch <= 0:
                # Not (or no longer) ours, or finished before this assignment.
                finished_before += epoch == ALREADY_FINISHED
                continue
            counts[topic] = counts.get(topic, 0) + 1
            work = self._settle.take(record_of(msg, tp, offset, epoch, headers(msg), topic))
            if work is not None:
                works.append(work)
            self._commit_when_due()  # not held back by the rest of the batch
        for topic, n in counts.items():
            self._on_records(topic, n)
        if finished_before:
            self._on_finished_before(finished_before)
        if works:
            self._handoff.submit(works)

    # -- back-pressure ----------------------------------------------------------

    def _apply_pauses(self) -> None:
        """Every partition paused while the global pause holds (or the source is
        stopping), else the ones the tracker blocks (too far ahead of their commit point)."""
        assigned = self._rebalance.assigned
        held_back = self._tracker.blocked_partitions() & assigned
        everything = self._backpressure.paused or self._drain is not None
        self._pauses.apply(assigned, held_back, everything=everything)

    # -- rebalance callbacks (run inside consume(), on this thread) ---------------

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self._rebalance.assign(partitions, stopping=self._drain is not None)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self._rebalance.revoke(partitions, self._drain_left())

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self._rebalance.lose(partitions)

    def _drain_left(self) -> float:
        """How long a release may wait for requests in flight: the drain timeout, or
        at shutdown what is left of the one drain (so close()'s revoke does not wait
        again); nothing after a fatal failure (fenced: the requests were cancelled)."""
        if self._drain is not None:
            return self._drain.left()
        if self._state.fatal_exit is not None:
            return 0.0
        return self._settings.drain_timeout

    # -- shutdown ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop posting, wait (once, within the drain timeout) for the requests in
        flight, commit what finished, close the consumer (``ShutdownDrain``).

        Run by the thread when it ends. Requests still open at the end are cancelled. A
        failure to commit still closes the consumer."""
        self._state.stopping = True
        self._drain = ShutdownDrain(
            self._settings, self._consumer, self._handoff, self._dlq, self._committer,
            self._state, self._consume,
        )  # fmt: skip
        with contextlib.suppress(KafkaException):  # after a fatal error: the consumer refuses
            self._apply_pauses()  # read nothing more; poll only for group events
        self._drain.run(set(self._rebalance.assigned))


def headers(msg: Message) -> Headers:
    """A consumed message's headers as a list (confluent-kafka may hand over a dict)."""
    raw = msg.headers()
    return list(raw.items()) if isinstance(raw, dict) else raw


def record_of(
    msg: Message, tp: TopicPartition, offset: int, epoch: int, own: Headers, topic: str
) -> ConsumedRecord:
    """The ``ConsumedRecord`` of a message read at ``tp``/``offset``, mapped as ``topic``'s."""
    kind, timestamp = msg.timestamp()
    stamped = timestamp if kind != TIMESTAMP_NOT_AVAILABLE else None
    return ConsumedRecord(tp, offset, epoch, msg.key(), msg.value(), own, stamped, topic)
