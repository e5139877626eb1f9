"""The dispatcher's lanes: a FIFO of records per lane and a heap of ready lanes.

A lane (``Work.lane``: guest key, partition or record, by ``delivery.ordering``) is
*ready* when it holds records and none of them is being posted; ``take`` hands out
the head record of the ready lane whose head arrived first (``Work.seq``), and that
lane stays out of the heap until ``done``, so a lane's records are posted one after
another in arrival (offset) order. Everything runs on the event loop; ``submit`` is
called there for the consumer thread.

Why a plain ``heapq`` and futures instead of ``asyncio.PriorityQueue``: taking a lane
while some are ready is a function call here, not a coroutine per record, and a
worker that finishes a lane whose next head is still the oldest takes it straight
back (``heapreplace``), without a push and a pop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from heapq import heappop, heappush

from connector.delivery.flow import Flow
from connector.offsets.tracker import TopicPartition
from connector.records import Work

__all__ = ["Lanes"]


class Lanes:
    """Per-lane queues and the ready heap, oldest head first (see the module docstring)."""

    def __init__(self, flow: Flow | None = None) -> None:
        self.flow = flow or Flow(1)  # told of every record taken or dropped (the feed's credit)
        self._lanes: dict[Hashable, deque[Work]] = {}  # a lane stays while taken
        self._ready: list[tuple[int, Hashable]] = []  # (seq of the head, lane)
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting for a lane
        self._seq = 0

    def submit(self, works: list[Work]) -> None:
        """Queue records in arrival order; numbers them (``Work.seq``)."""
        seq = self._seq
        lanes = self._lanes
        for work in works:
            work.seq = seq
            seq += 1
            lane = lanes.get(work.lane)
            if lane is None:
                lanes[work.lane] = deque((work,))
                heappush(self._ready, (work.seq, work.lane))
            else:
                lane.append(work)  # ready already, or taken: ``done`` puts it back
        self._seq = seq
        self._wake()

    def take(self) -> Work | None:
        """The head record of the oldest ready lane, or None when no lane is ready.
        The lane is the caller's until it calls ``done(work)``."""
        ready = self._ready
        while ready:
            _, key = heappop(ready)
            lane = self._lanes.get(key)
            if lane:
                self.flow.took()
                return lane.popleft()
            del self._lanes[key]  # emptied by ``drop`` while it waited
        return None

    def done(self, work: Work) -> Work | None:
        """``work`` has an outcome (or was dropped): its lane is ready again if it
        holds more. Returns the next record to post (as ``take``)."""
        key = work.lane
        lane = self._lanes[key]
        if not lane:
            del self._lanes[key]
            return self.take()
        ready = self._ready
        if ready and ready[0][0] < lane[0].seq:
            heappush(ready, (lane[0].seq, key))
            self._wake()
            return self.take()
        self.flow.took()
        return lane.popleft()  # this lane's head is the oldest: no heap round trip

    async def wait(self) -> None:
        """Until a lane may be ready (``take`` may still find none: another took it)."""
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        await waiter

    def drop(self, tps: set[TopicPartition]) -> None:
        """Forget the queued records of these partitions (those being posted stay)."""
        dropped = 0
        for lane in self._lanes.values():
            if any(w.tp in tps for w in lane):
                kept = [w for w in lane if w.tp not in tps]
                dropped += len(lane) - len(kept)
                lane.clear()
                lane.extend(kept)
        if dropped:
            self.flow.took(dropped)

    @property
    def queued(self) -> int:
        """Records waiting (not those being posted)."""
        return sum(len(lane) for lane in self._lanes.values())

    def _wake(self) -> None:
        """Wake as many idle workers as lanes are ready (one takes each)."""
        idle = self._idle
        wanted = len(self._ready)
        while idle and wanted:
            waiter = idle.popleft()
            if not waiter.done():  # not cancelled with its worker
                waiter.set_result(None)
                wanted -= 1
