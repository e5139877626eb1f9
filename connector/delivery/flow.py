"""Flow: how many records the consumer thread hands over ahead of what the loop posts.

The consumer thread decodes and maps; the event loop posts. Both run Python, so they
share one interpreter lock, and uvloop takes that lock once per I/O callback: while
the consumer thread runs a long stretch of decode and map work, every socket callback
of the loop waits for the lock's switch interval (5 ms), and the loop barely posts.
Reading until ``delivery.max_buffered_records`` are held, then pausing until half
were posted, made exactly such stretches (10,000 records at once after each resume)
and a stall in delivery every ~20,000 records.

So the consumer thread works in small steps paced by the loop: it hands over at most
``kafka.poll_batch`` records at a time, and only while fewer than ``low`` handed-over
records wait for a worker. Between steps it sleeps (lock released) until the workers
have taken enough (``took`` wakes it when the count falls below ``low``). The records
waiting stay within ``low`` and ``low + poll_batch``: enough that a worker finishing a
request always finds the next one, few enough that the loop is never held up by
more than one step of decode and map work. The buffer ceiling and the run-ahead bound
stay as they were, as ceilings; in a healthy run neither is reached.

The loop never waits for the consumer thread. An earlier version had a loop that needed
records wait (up to 5 ms, without the interpreter lock) until the thread, away in
``consume``, held the lock again, so that it mapped its step at once. On a busy box the
thread may have no core to run on then, and the loop sat idle for the whole wait: with
the test suite running beside it, (a) delivered 3,852-7,305 events/s with the wait and
8,435-9,271 without, in the same rounds; on a quiet box the two were level. A thread
waiting for the lock gets it within the switch interval anyway.

Counters, each written by one thread only (so no lock): ``sent`` by the consumer
thread (``Handoff.submit``, before the batch crosses to the loop, so a batch on its way
counts as waiting), ``taken`` by the loop (``Lanes``: a worker took a record, or a
revoke dropped it).
"""

from __future__ import annotations

import threading

__all__ = ["Flow"]


class Flow:
    """Credit between the consumer thread (``handed``, ``wait_for_room``) and the
    dispatcher's lanes on the loop (``took``)."""

    def __init__(self, low: int) -> None:
        self.low = max(1, low)  # hand over more while fewer than this wait for a worker
        self.sent = 0  # records handed over (consumer thread)
        self.taken = 0  # records a worker took or a release dropped (the loop)
        self._room = threading.Event()

    @property
    def waiting(self) -> int:
        """Records handed over that no worker has taken yet (those on their way included)."""
        return self.sent - self.taken

    # -- the consumer thread -------------------------------------------------------

    def handed(self, n: int) -> None:
        self.sent += n

    def wait_for_room(self, timeout: float) -> bool:
        """Until fewer than ``low`` records wait for a worker, at most ``timeout`` s;
        True when they do. Sleeps without the interpreter lock."""
        if self.sent - self.taken < self.low:
            return True
        self._room.clear()
        if self.sent - self.taken < self.low:  # taken meanwhile (``took`` set it before the clear)
            return True
        return self._room.wait(timeout)

    # -- the loop ------------------------------------------------------------------

    def took(self, n: int = 1) -> None:
        self.taken += n
        if self.sent - self.taken < self.low and not self._room.is_set():
            self._room.set()
