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

The lock is handed over, not fought for. While the loop is busy it takes and releases
the interpreter lock once per callback, and CPython lets a waiting thread force a
switch only when the lock changed hands not at all for a switch interval: a thread
that released the lock (to ``consume`` from librdkafka, or to sleep) can then wait for
it as long as the loop stays busy, and the loop runs dry. So the consumer thread says
when it is about to go without the lock (``leave``) and when it holds it again
(``back``); a loop that needs records (``took`` below ``low``) while the thread is away
waits for it, once per absence and at most ``HANDOVER_SECONDS``, without the lock, so
that the thread gets it at once and maps its step.

Counters, each written by one thread only (so no lock): ``sent`` by the consumer
thread (``Handoff.submit``, before the batch crosses to the loop, so a batch on its way
counts as waiting), ``taken`` by the loop (``Lanes``: a worker took a record, or a
revoke dropped it).
"""

from __future__ import annotations

import threading

__all__ = ["HANDOVER_SECONDS", "Flow"]

HANDOVER_SECONDS = 0.005  # the longest the loop waits for the consumer thread to take the lock


class Flow:
    """Credit between the consumer thread (``handed``, ``wait_for_room``) and the
    dispatcher's lanes on the loop (``took``)."""

    def __init__(self, low: int) -> None:
        self.low = max(1, low)  # hand over more while fewer than this wait for a worker
        self.sent = 0  # records handed over (consumer thread)
        self.taken = 0  # records a worker took or a release dropped (the loop)
        self._room = threading.Event()
        self._back = threading.Event()  # set by the thread once it holds the lock again
        self.away = False  # the thread is in calls without the lock (thread-written)
        self._absences = 0  # how many times it left (thread-written)
        self._waited_for = 0  # the absence the loop last waited for (loop-written)

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

    def leave(self) -> None:
        """About to call what releases the interpreter lock (``consume``, the room wait)."""
        self._back.clear()
        self._absences += 1
        self.away = True

    def back(self) -> None:
        """Holding the interpreter lock again: a loop waiting for that goes on."""
        self.away = False
        self._back.set()

    # -- the loop ------------------------------------------------------------------

    def took(self, n: int = 1) -> None:
        self.taken += n
        if self.sent - self.taken < self.low:
            if not self._room.is_set():
                self._room.set()
            if self.away and self._waited_for != self._absences:
                # Once per absence: let the thread take the lock and map its next step.
                self._waited_for = self._absences
                self._back.wait(HANDOVER_SECONDS)
