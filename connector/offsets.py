"""Which offsets may be committed: the highest offset below which every record has an outcome.

Records of one partition arrive in offset order; their outcomes (delivered,
dead-lettered with the write acknowledged, skipped) arrive in any order. Per
partition we keep the offsets still pending in arrival order and advance the
commit point over the finished prefix. Kafka commits "the offset of the next
record to read", so the commit point is the last finished offset + 1.

Outcomes come from two threads (the consumer thread for decode/map outcomes and
DLQ acknowledgements, the event loop for deliveries), so the tracker is locked.
Each assignment of a partition gets a new epoch: an outcome for a record read
under an older assignment is ignored, so it can never move a new owner's offsets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass
class _Partition:
    epoch: int
    pending: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    commit_point: int | None = None  # next offset to read, all before it finished
    committed: int | None = None  # last commit point handed to Kafka


class OffsetTracker:
    """Thread-safe record of outcomes per partition; answers what is safe to commit."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._epochs = 0
        self._pending = 0

    # -- assignment ---------------------------------------------------------

    def assign(self, tp: TopicPartition) -> int:
        """Start tracking a newly assigned partition; returns its epoch."""
        with self._lock:
            self._epochs += 1
            old = self._partitions.pop(tp, None)
            if old is not None:
                self._pending -= len(old.pending) - len(old.finished)
            self._partitions[tp] = _Partition(self._epochs)
            self._lock.notify_all()
            return self._epochs

    def revoke(self, tp: TopicPartition) -> None:
        """Forget a partition; outcomes still arriving for it are ignored."""
        with self._lock:
            part = self._partitions.pop(tp, None)
            if part is not None:
                self._pending -= len(part.pending) - len(part.finished)
            self._lock.notify_all()

    def epoch(self, tp: TopicPartition) -> int | None:
        with self._lock:
            part = self._partitions.get(tp)
            return None if part is None else part.epoch

    # -- records ------------------------------------------------------------

    def add(self, tp: TopicPartition, offset: int) -> int | None:
        """A record was read and is now held until its outcome; returns the partition's
        epoch (to pass to ``finish``), or None when the partition is not tracked."""
        with self._lock:
            part = self._partitions.get(tp)
            if part is None:
                return None
            part.pending.append(offset)
            self._pending += 1
            return part.epoch

    def finish(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """The record has a durable outcome."""
        with self._lock:
            part = self._partitions.get(tp)
            if part is None or part.epoch != epoch or offset in part.finished:
                return
            if not part.pending or offset < part.pending[0]:
                return
            part.finished.add(offset)
            self._pending -= 1
            while part.pending and part.pending[0] in part.finished:
                done = part.pending.popleft()
                part.finished.discard(done)
                part.commit_point = done + 1
            self._lock.notify_all()

    @property
    def pending(self) -> int:
        """Records read but without an outcome yet (what the memory bound counts)."""
        return self._pending

    # -- commits ------------------------------------------------------------

    def committable(self, tps: list[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Commit points that moved since the last ``mark_committed``."""
        with self._lock:
            chosen = self._partitions if tps is None else {
                tp: self._partitions[tp] for tp in tps if tp in self._partitions
            }  # fmt: skip
            return {
                tp: p.commit_point
                for tp, p in chosen.items()
                if p.commit_point is not None and p.commit_point != p.committed
            }

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, offset in offsets.items():
                part = self._partitions.get(tp)
                if part is not None and (part.committed is None or offset > part.committed):
                    part.committed = offset

    def forget_committed(self, tps: list[TopicPartition]) -> None:
        """A commit failed: the next ``committable`` offers these commit points again."""
        with self._lock:
            for tp in tps:
                part = self._partitions.get(tp)
                if part is not None:
                    part.committed = None

    def wait_drained(self, tps: list[TopicPartition] | None, timeout: float) -> bool:
        """Block until the given partitions (all if None) have no pending records."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                left = self._pending if tps is None else sum(
                    len(p.pending) - len(p.finished)
                    for tp in tps
                    if (p := self._partitions.get(tp)) is not None
                )  # fmt: skip
                remaining = deadline - time.monotonic()
                if left == 0:
                    return True
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.5))
