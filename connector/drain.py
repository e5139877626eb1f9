"""The shutdown drain's talk with the group coordinator.

While the drain waits for the requests in flight, nothing else would reach the
coordinator but librdkafka's heartbeats (``heartbeat.interval.ms``, 3 s by default).
A static member (``group.instance.id``) does not leave the group on close, and a
replacement with its instance id owns the partitions as soon as it joins: the old
process would learn it was fenced only on its next heartbeat, seconds during which
both have requests open for the same guests. So the drain commits synchronously,
every ``DRAIN_COMMIT_SECONDS``, what finished (the same offsets again when nothing
moved: the commit is the question). A fenced static member's commit fails at once
with ``FENCED_INSTANCE_ID``; ``Committer`` fails the run, and the drain cancels its
open requests (``KafkaSource.shutdown``).

That leaves a race: the old process learns of the fence up to one period (plus the
drain's 50 ms poll step and a commit round trip) after the replacement joined, while
the replacement could post tens of milliseconds after its join. So a static member
holds its first assignment for ``TAKEOVER_HOLD_SECONDS`` before it reads the committed
offsets and posts: longer than a draining predecessor needs to learn of the fence and
cancel its requests. Later assignments come from rebalances, where the previous owner
has revoked (and drained) first.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer

from connector.commits import Committer
from connector.state import RunState

# How often the drain asks the coordinator whether this member still owns its
# partitions: bounds how long a fenced process keeps requests open beside its
# replacement (plus one commit round trip and the cancellation).
DRAIN_COMMIT_SECONDS = 0.1
# How long a static member's first assignment waits before anything is read or posted:
# one drain period, the drain's 50 ms poll step, a commit round trip and the
# cancellation, with room to spare (a predecessor stalled longer is not covered).
TAKEOVER_HOLD_SECONDS = 0.3


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
