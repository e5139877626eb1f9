"""Which offsets may be committed: the highest offset below which every record has an outcome.

Records of one partition arrive in offset order; their outcomes (delivered,
dead-lettered with the write acknowledged, skipped) arrive in any order. Per
partition we keep the offsets still pending in arrival order and advance the
commit point over the finished prefix. Kafka commits "the offset of the next
record to read", so the commit point is the last finished offset + 1.

Guarantees:
1. The commit point never passes a record without an outcome.
2. The finished offsets above it travel with the commit (``to_commit``, encoded by
   ``connector.offsets.metadata``); the next owner hands them to ``assign``, and when
   those records are read again ``admit`` says ``ALREADY_FINISHED``: counted, not
   posted. A restart re-posts what was in flight, not all behind the slowest record.
3. A partition whose newest record is ``max_ahead`` or more past its commit point
   stops accepting (``accepts``, ``blocked_partitions``) until the commit point has
   moved to within half of that. The source pauses just that partition (what it has
   read already is still admitted: refusing a record would lose it), so its
   finished set stays within the span the metadata always holds, and a stuck record
   holds back bounded work. Back-pressure, never a weaker guarantee.
4. Commits follow progress: a partition is offered again (``to_commit``) only when its
   commit point or finished set changed since the last ``mark_committed``.

Outcomes come from two threads (the consumer thread for decode/map outcomes and
DLQ acknowledgements, the event loop for deliveries), so the tracker is locked
(``epoch`` alone reads without the lock; its docstring says why that is safe).
Each assignment of a partition gets a new epoch: an outcome for a record read
under an older assignment is ignored, so it can never move a new owner's offsets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["ALREADY_FINISHED", "NOT_OURS", "CommitState", "OffsetTracker", "TopicPartition"]

TopicPartition = tuple[str, int]

NOT_OURS: Final = 0  # ``admit``: the partition is not (or no longer) assigned here
ALREADY_FINISHED: Final = -1  # ``admit``: finished before (commit metadata); not posted


@dataclass(frozen=True, slots=True)
class CommitState:
    """What to commit for one partition: the offset and the finished offsets above it."""

    offset: int  # the next offset to read; every record before it has an outcome
    finished: tuple[int, ...]  # offsets above ``offset`` with an outcome too, ascending
    epoch: int
    version: int  # progress counter of the partition; ``mark_committed`` records it


@dataclass
class _Partition:
    epoch: int
    pending: deque[int] = field(default_factory=deque)  # read, from the commit point on
    finished: set[int] = field(default_factory=set)  # those of ``pending`` with an outcome
    restored: deque[int] = field(default_factory=deque)  # finished before, not read again
    # What to commit: the committed offset or the first record read, then the commit point.
    base: int | None = None
    last_read: int = -1
    version: int = 0  # bumped whenever the commit point or the finished set changes
    committed_version: int = 0  # -1: offer again whatever it is
    blocked: bool = False


class OffsetTracker:
    """Thread-safe record of outcomes per partition; answers what is safe to commit.

    ``max_ahead`` bounds how far a partition runs ahead of its commit point (None:
    unbounded); ``connector.offsets.metadata.run_ahead_limit`` computes it for a commit prefix.
    """

    def __init__(self, max_ahead: int | None = None) -> None:
        self._lock = threading.Condition()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._epochs = 0
        self._pending = 0
        self._max_ahead = max_ahead

    # -- assignment ---------------------------------------------------------

    def assign(
        self, tp: TopicPartition, committed: int | None = None, finished: Iterable[int] = ()
    ) -> int:
        """Start tracking a newly assigned partition; returns its epoch.

        ``committed`` is the group's committed offset, ``finished`` what its metadata
        says was finished above it (``connector.offsets.metadata.decode``); such records are
        ``ALREADY_FINISHED`` when read again, and stay in every commit until then.
        """
        with self._lock:
            self._epochs += 1
            old = self._partitions.pop(tp, None)
            if old is not None:
                self._pending -= len(old.pending) - len(old.finished)
            part = _Partition(self._epochs, base=committed)
            if committed is not None:
                part.restored.extend(sorted(o for o in finished if o >= committed))
            self._partitions[tp] = part
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
        """The partition's current epoch, or None when it is not assigned here.

        Called by the loop before every attempt (``connector.delivery.ownership``), so it takes no
        lock: ``dict.get`` is one atomic step under the GIL, and a ``_Partition``'s
        ``epoch`` is set when it is made and never changed (``assign`` puts in a new
        object, ``revoke`` pops it). The answer is the epoch of the assignment current
        at that instant, the same answer a locked read would give one step earlier or
        later; a revoke or re-assign right after is caught by ``finish`` (epoch check).
        """
        part = self._partitions.get(tp)
        return None if part is None else part.epoch

    # -- records ------------------------------------------------------------

    def admit(self, tp: TopicPartition, offset: int) -> int:
        """A record was read. Returns its epoch (> 0; the record is now held until
        ``finish``), ``NOT_OURS``, or ``ALREADY_FINISHED`` (it had an outcome before
        this assignment: it counts as finished now and must not be posted again)."""
        with self._lock:
            return self._admit(tp, offset)

    def admit_many(self, records: Iterable[tuple[TopicPartition, int]]) -> list[int]:
        """``admit`` for each ``(partition, offset)`` of one consumed batch, in order,
        under one acquisition of the lock; the answers in the same order.

        Called by the source for each batch ``consume`` returned, before any of it is
        settled: the loop's ``finish`` calls wait for the batch once, not per record.
        """
        with self._lock:
            admit = self._admit
            return [admit(tp, offset) for tp, offset in records]

    def _admit(self, tp: TopicPartition, offset: int) -> int:
        part = self._partitions.get(tp)
        if part is None:
            return NOT_OURS
        if part.base is None:
            part.base = offset
        part.last_read = offset
        if self._max_ahead is not None and offset - part.base + 1 >= self._max_ahead:
            part.blocked = True  # the source pauses it; this record is held all the same
        restored = part.restored
        if restored and restored[0] <= offset:
            while restored and restored[0] < offset:
                restored.popleft()  # never read again: not in the log any more
            if restored and restored[0] == offset:
                restored.popleft()
                if part.pending:
                    part.pending.append(offset)
                    part.finished.add(offset)
                else:  # every earlier record has an outcome: the commit point moves
                    part.base = offset + 1
                    part.version += 1
                    self._unblock(part)
                return ALREADY_FINISHED
        part.pending.append(offset)
        self._pending += 1
        return part.epoch

    def add(self, tp: TopicPartition, offset: int) -> int | None:
        """``admit`` for callers that only process or skip: the epoch, or None when the
        record needs nothing (not ours, or already finished)."""
        epoch = self.admit(tp, offset)
        return epoch if epoch > 0 else None

    def finish(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """The record has a durable outcome."""
        with self._lock:
            part = self._partitions.get(tp)
            if part is None or part.epoch != epoch or offset in part.finished:
                return
            if not part.pending or offset < part.pending[0]:
                return
            part.finished.add(offset)
            part.version += 1
            self._pending -= 1
            if offset == part.pending[0]:
                while part.pending and part.pending[0] in part.finished:
                    done = part.pending.popleft()
                    part.finished.discard(done)
                    part.base = done + 1
                self._unblock(part)
            self._lock.notify_all()

    def _unblock(self, part: _Partition) -> None:
        if part.blocked and self._max_ahead is not None and part.base is not None:
            part.blocked = part.last_read - part.base + 1 > self._max_ahead // 2

    def accepts(self, tp: TopicPartition) -> bool:
        """Whether the partition takes new records (False: pause it until this is True)."""
        with self._lock:
            part = self._partitions.get(tp)
            return part is not None and not part.blocked

    def blocked_partitions(self) -> set[TopicPartition]:
        """Partitions too far ahead of their commit point to take new records."""
        with self._lock:
            return {tp for tp, part in self._partitions.items() if part.blocked}

    @property
    def pending(self) -> int:
        """Records read but without an outcome yet (what the memory bound counts)."""
        return self._pending

    # -- commits ------------------------------------------------------------

    def to_commit(
        self, tps: list[TopicPartition] | None = None, *, unchanged: bool = False
    ) -> dict[TopicPartition, CommitState]:
        """Partitions whose commit point or finished set changed since ``mark_committed``
        (``unchanged``: every partition with a commit point, moved or not).

        Encode each with ``metadata.encode(prefix, state.offset, state.finished)``
        (``connector.offsets.metadata``).
        """
        with self._lock:
            chosen = self._partitions if tps is None else {
                tp: self._partitions[tp] for tp in tps if tp in self._partitions
            }  # fmt: skip
            return {
                tp: CommitState(p.base, (*sorted(p.finished), *p.restored), p.epoch, p.version)
                for tp, p in chosen.items()
                if p.base is not None and (unchanged or p.version != p.committed_version)
            }

    def mark_committed(self, offsets: Mapping[TopicPartition, CommitState]) -> None:
        """These states (from ``to_commit``) were handed to Kafka; they are not offered
        again unless they change or a commit fails."""
        with self._lock:
            for tp, done in offsets.items():
                part = self._partitions.get(tp)
                if part is not None and done.epoch == part.epoch:
                    part.committed_version = max(part.committed_version, done.version)

    def forget_committed(self, tps: list[TopicPartition]) -> None:
        """A commit failed: the next ``to_commit`` offers these again."""
        with self._lock:
            for tp in tps:
                part = self._partitions.get(tp)
                if part is not None:
                    part.committed_version = -1

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
