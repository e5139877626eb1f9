"""The shutdown drain: stop posting, wait for the requests in flight, commit, close.

``ShutdownDrain`` runs once, on the consumer thread, when ``KafkaSource``'s thread
ends: release every partition with the consumer polled meanwhile (a fenced or expired
member learns it and stops at once), cancel what is still open, wait for the
dead-letter acknowledgements, commit what finished, close the consumer (which does not
wait again: its revoke gets what is left of the one drain).

The drain's talk with the group coordinator (``DrainCommits``): while the drain
waits for the requests in flight, nothing else would reach the coordinator but
librdkafka's heartbeats (``heartbeat.interval.ms``, 3 s by default).
A static member (``group.instance.id``) does not leave the group on close, and a
replacement with its instance id owns the partitions as soon as it joins: the old
process would learn it was fenced only on its next heartbeat, seconds during which
both have requests open for the same guests. So the drain commits synchronously,
every ``DRAIN_COMMIT_SECONDS``, what finished (the same offsets again when nothing
moved: the commit is the question). A fenced static member's commit fails at once
with ``FENCED_INSTANCE_ID``; ``Committer`` fails the run, and the drain cancels its
open requests (``ShutdownDrain.run``).

That leaves a race: the old process learns of the fence up to one period (plus the
drain's 50 ms poll step and a commit round trip) after the replacement joined, while
the replacement could post tens of milliseconds after its join. So a static member
holds its first assignment for ``TAKEOVER_HOLD_SECONDS`` before it reads the committed
offsets and posts: longer than a draining predecessor needs to learn of the fence and
cancel its requests. Later assignments come from rebalances, where the previous owner
has revoked (and drained) first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message

from connector.kafka.commits import Committer
from connector.kafka.errors import message_error
from connector.offsets.tracker import TopicPartition
from connector.run_state import RunState
from connector.settle.deadletter import DeadLetterQueue
from connector.source.handoff import Handoff
from connector.source.settings import SourceSettings

__all__ = ["FLUSH_GRACE", "TAKEOVER_HOLD_SECONDS", "DrainCommits", "ShutdownDrain"]

log = logging.getLogger("connector.source.kafka_source")  # the source's lines, as before the split

# How often the drain asks the coordinator whether this member still owns its
# partitions: bounds how long a fenced process keeps requests open beside its
# replacement (plus one commit round trip and the cancellation).
DRAIN_COMMIT_SECONDS = 0.1
# How long a static member's first assignment waits before anything is read or posted:
# one drain period, the drain's 50 ms poll step, a commit round trip and the
# cancellation, with room to spare (a predecessor stalled longer is not covered).
TAKEOVER_HOLD_SECONDS = 0.3
# After the drain: how long dead-letter writes may still be acknowledged.
FLUSH_GRACE = 1.0


class DrainCommits:
    """A synchronous commit every ``DRAIN_COMMIT_SECONDS`` during the drain."""

    def __init__(
        self, committer: Committer, state: RunState, period: float = DRAIN_COMMIT_SECONDS
    ) -> None:
        self._committer = committer
        self._state = state
        self._period = period
        self._next = 0.0  # the first call commits at once
        self.commits = 0

    def due(self, consumer: Consumer) -> None:
        """Commit now when the period passed (nothing after a fatal failure)."""
        now = time.monotonic()
        if now < self._next or self._state.fatal_exit is not None:
            return
        self._next = now + self._period
        self.commits += 1
        self._committer.commit(consumer, asynchronous=False, again=True)


class ShutdownDrain:
    """The one drain of a stopping source, within ``shutdown.drain_timeout_seconds``.

    Built by ``KafkaSource.shutdown`` on the consumer thread (the deadline starts
    then); ``run`` does the rest there. ``consume`` is the source's own (a fatal client
    error fails the run instead of raising). Records held but not yet posted are not
    waited for: the next owner reads them again. After a fatal failure nothing is waited
    for or committed. A failed commit propagates, after the consumer is closed."""

    def __init__(
        self,
        settings: SourceSettings,
        consumer: Consumer,
        handoff: Handoff,
        deadletter: DeadLetterQueue,
        committer: Committer,
        state: RunState,
        consume: Callable[[int, float], list[Message]],
    ) -> None:
        self._deadline = time.monotonic() + settings.drain_timeout
        self._static = settings.static_member
        self._poll_batch = settings.poll_batch
        self._consumer = consumer
        self._handoff = handoff
        self._dlq = deadletter
        self._committer = committer
        self._state = state
        self._consume = consume
        self._commits: DrainCommits | None = None

    def left(self) -> float:
        """What is left of the drain; nothing after a fatal failure (fenced: the
        requests were cancelled)."""
        if self._state.fatal_exit is not None:
            return 0.0
        return max(0.0, self._deadline - time.monotonic())

    def run(self, tps: set[TopicPartition]) -> None:
        """Release ``tps`` (the partitions assigned), flush, commit, close."""
        fatal = self._state.fatal_exit is not None
        if self._static and not fatal:
            self._commits = DrainCommits(self._committer, self._state)  # the fence shows
        done = self._handoff.release(tps, 0 if fatal else self.left(), self._poll_group)
        if not done or self._state.fatal_exit is not None:
            self._handoff.stop(FLUSH_GRACE)  # cancel what is still open
        if not done:
            log.warning("stopped posting with requests in flight (%s); their records will be "
                        "read again", self._state.fatal_exit or "drain timeout")  # fmt: skip
        if self._dlq.flush(max(FLUSH_GRACE, self.left())):
            log.warning("dead-letter writes unacknowledged at shutdown; read again")
        try:
            self._committer.commit(self._consumer, asynchronous=False)
        finally:
            self._close()

    def _poll_group(self) -> bool:
        """During the drain: serve group events (fencing, revoke, lost) and dead-letter
        acknowledgements; True when the drain must end now (a fatal failure)."""
        messages = self._consume(self._poll_batch, 0)
        for msg in messages:  # paused already: whatever still arrives is read again later
            if (err := msg.error()) is not None:
                message_error(self._state, err)
        self._dlq.poll(0)
        if self._commits is not None and self._state.broker_down_since is None:
            self._commits.due(self._consumer)  # a static member's fence shows at once
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
        elif self._static:
            log.info("consumer closed; a static member stays in the group: its partitions "
                     "wait session.timeout.ms for a member with its group.instance.id")  # fmt: skip
        else:
            log.info("consumer closed; left the group")
