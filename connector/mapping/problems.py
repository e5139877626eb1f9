"""Compile and path problems, collected and reported together in one message.

Every problem names the file and line, then the rule, event and field it
belongs to (``m.yaml:12: rule 'views', VIEW, field 'page': ...``), so one run
shows every mistake; :meth:`Problems.raise_if_any` turns them into one
ConfigError.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from connector.errors import ConfigError

__all__ = ["Problems", "locate", "suggest"]

_MAX_REPORTED = 20


def locate(
    filename: str,
    line: int,
    message: str,
    *,
    rule: str | None = None,
    event: str | None = None,
    field: str | None = None,
) -> str:
    """``file:line: rule 'r', EVENT, field 'f': message`` (the parts that are known)."""
    where = [f"rule {rule!r}"] if rule else []
    if event:
        where.append(event)
    if field:
        where.append(f"field {field!r}")
    prefix = ", ".join(where)
    return f"{filename}:{line}: {prefix}: {message}" if prefix else f"{filename}:{line}: {message}"


class Problems:
    """Collects problems so one run reports all of them, not just the first."""

    def __init__(self, filename: str, what: str = "mapping rules") -> None:
        self.filename = filename
        self.what = what
        self.messages: list[str] = []
        #: Lines said after the problems (what they may have in common).
        self.notes: list[str] = []
        self._seen: set[tuple[int, str | None, str]] = set()

    def add(
        self,
        line: int,
        message: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        event: str | None = None,
    ) -> None:
        """Note one problem at ``line`` (once, however many events compile that line)."""
        key = (line, field, message)
        if key in self._seen:  # the same line compiled for several events: report it once
            return
        self._seen.add(key)
        self.messages.append(
            locate(self.filename, line, message, rule=rule, event=event, field=field)
        )

    def text(self) -> str:
        """Every problem, one per line (the first ones when there are many), under a count."""
        shown = self.messages[:_MAX_REPORTED]
        more = len(self.messages) - len(shown)
        body = "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
        count = len(self.messages)
        notes = "".join(f"\n{note}" for note in self.notes)
        return f"{count} problem{'s' if count > 1 else ''} in {self.what}:\n  {body}{notes}"

    def raise_if_any(self) -> None:
        """ConfigError with ``text`` when any problem was added; the compiler's last step."""
        if self.messages:
            raise ConfigError(self.text())


def suggest(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else empty."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
