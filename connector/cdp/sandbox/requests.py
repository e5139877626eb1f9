"""The sandbox's request log: when each event request was open, whose it was, how it ended.

Lets a test check the per-guest guarantees from the server's side: no two
requests of one guest open at once (``overlaps``), and which request of a guest
came first. Faulted requests are logged too — a retry is a request.
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RequestLog", "RequestNote"]


@dataclass(slots=True)
class RequestNote:
    """One event request; ``status`` stays ``"none"`` when no answer was written."""

    seq: int
    start: float
    end: float | None = None
    browser_id: str | None = None
    type: str | None = None
    status: str = "none"
    ref: str | None = None  # the accepted event's ref (``/_sandbox/events``)


class RequestLog:
    """The last ``max_entries`` event requests, and the guests seen with two open at once."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._entries: collections.deque[RequestNote] = collections.deque(maxlen=max_entries)
        self._seq = 0
        # Requests open right now per guest; kept across clear(): they are still open.
        self._open: collections.Counter[str] = collections.Counter()
        self.overlaps = 0
        self.overlapping: set[str] = set()

    def open(self, now: float) -> RequestNote:
        """A request arrived at ``now`` (wall clock)."""
        self._seq += 1
        note = RequestNote(self._seq, now)
        self._entries.append(note)
        return note

    def identify(self, note: RequestNote, browser_id: object, event_type: object) -> None:
        """The request's body named its guest and type."""
        if isinstance(event_type, str):
            note.type = event_type
        if not isinstance(browser_id, str):
            return
        note.browser_id = browser_id
        if self._open[browser_id] > 0:
            self.overlaps += 1
            self.overlapping.add(browser_id)
        self._open[browser_id] += 1

    def close(self, note: RequestNote, now: float) -> None:
        """The request's handler ended at ``now`` (answered, dropped or cancelled)."""
        note.end = now
        guest = note.browser_id
        if guest is not None and self._open[guest] > 0:
            self._open[guest] -= 1
            if not self._open[guest]:
                del self._open[guest]

    def entries(self, browser_id: str | None = None) -> list[dict[str, Any]]:
        """Logged requests, oldest first (optionally of one guest)."""
        return [
            asdict(note)
            for note in self._entries
            if browser_id is None or note.browser_id == browser_id
        ]

    def clear(self) -> None:
        """Forget the log and the overlap counts (requests open now stay counted open)."""
        self._entries.clear()
        self.overlaps = 0
        self.overlapping.clear()

    def stats(self) -> dict[str, Any]:
        """How often a guest had two requests open at once, and which guests."""
        return {"guest_overlaps": self.overlaps, "overlapping_guests": sorted(self.overlapping)}
