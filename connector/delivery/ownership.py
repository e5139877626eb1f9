"""Which records the dispatcher may still post, and its requests open per partition.

A record is ours while the tracker's epoch for its partition is the record's epoch
and the partition was not released at that epoch. ``release`` comes first on revoke,
at shutdown and when fenced (``connector.source.handoff``, on the loop), before the tracker
forgets the partition; the in-flight counts let the handoff wait for requests that
already left. Event loop only; ``connector.delivery.dispatcher`` checks ``owns`` right before
every request.
"""

from __future__ import annotations

import asyncio

from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import Work

__all__ = ["Ownership"]


class Ownership:
    """Released epochs per partition, and HTTP requests open per partition."""

    def __init__(self, tracker: OffsetTracker) -> None:
        self._tracker = tracker
        self._fenced: dict[TopicPartition, int] = {}  # epoch released, not yet revoked
        #: HTTP requests open per partition; the dispatcher counts them around each send.
        self.requests: dict[TopicPartition, int] = {}

    def owns(self, work: Work) -> bool:
        """Whether the record's partition is still ours (not released, not revoked)."""
        tp = work.tp
        return self._fenced.get(tp) != work.epoch and self._tracker.epoch(tp) == work.epoch

    def release(self, tps: set[TopicPartition]) -> None:
        """No record of these partitions, at their current epoch, is ours any more."""
        tracker = self._tracker
        self._fenced = {tp: e for tp, e in self._fenced.items() if tracker.epoch(tp) == e}
        for tp in tps:
            if (epoch := tracker.epoch(tp)) is not None:
                self._fenced[tp] = epoch

    def in_flight(self, tps: set[TopicPartition]) -> int:
        """Requests open for records of these partitions."""
        return sum(self.requests.get(tp, 0) for tp in tps)

    async def wait_in_flight(self, tps: set[TopicPartition]) -> None:
        """Until no request is open for these partitions; the caller bounds the wait."""
        # In-flight counts change at many awaits; polling them is the simple, cheap way.
        while self.in_flight(tps):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
