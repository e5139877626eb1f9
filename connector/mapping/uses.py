"""Where a mapping reads the record: every path, noted while the rules compile.

The compiler knows the rule, event and field it is compiling; the leaf
compilers (``expressions``, ``fields``) know the path text and its line. A
:class:`Recorder` is set for the duration of one ``compile_*`` call and the
leaves append :class:`PathUse` entries to it, so the path checker can later
hold each one against a writer schema without compiling again. Outside a
compilation :func:`record` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from connector.mapping.targets import Target

__all__ = ["PathUse", "Recorder", "record", "recording", "scoped", "untyped"]


@dataclass(frozen=True)
class PathUse:
    """One expression reading the record.

    ``scope`` lists the ``each`` paths the expression is relative to (outermost
    first; ``$.`` paths start again at the record). ``target`` is the field it
    feeds when no transform stands between (None: the type is not checked).
    """

    line: int
    rule: str | None
    event: str | None
    field: str
    text: str
    scope: tuple[str, ...]
    target: Target | None


@dataclass
class Recorder:
    """Collects the uses of one compilation; the compiler sets ``rule`` and ``event``."""

    uses: list[PathUse] = field(default_factory=list)
    rule: str | None = None
    event: str | None = None
    scope: tuple[str, ...] = ()
    typed: bool = True  # False while compiling the source of a transform pipeline


_current: ContextVar[Recorder | None] = ContextVar("mapping_uses", default=None)


@contextmanager
def recording() -> Iterator[Recorder]:
    """Collect the path uses of everything compiled inside the ``with`` block."""
    recorder = Recorder()
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)


@contextmanager
def scoped(path: str) -> Iterator[None]:
    """Expressions compiled inside are relative to each element of the list at ``path``."""
    recorder = _current.get()
    if recorder is None:
        yield
        return
    before = recorder.scope
    recorder.scope = (*before, path)
    try:
        yield
    finally:
        recorder.scope = before


@contextmanager
def untyped() -> Iterator[None]:
    """Uses recorded inside feed a transform, not the field: their type is not compared."""
    recorder = _current.get()
    if recorder is None:
        yield
        return
    before = recorder.typed
    recorder.typed = False
    try:
        yield
    finally:
        recorder.typed = before


def record(text: str, line: int, where: str, target: Target | None) -> None:
    """Note that the expression ``text`` (line ``line``) computes field ``where``."""
    recorder = _current.get()
    if recorder is not None:
        recorder.uses.append(
            PathUse(
                line,
                recorder.rule,
                recorder.event,
                where,
                text,
                recorder.scope,
                target if recorder.typed else None,
            )
        )
