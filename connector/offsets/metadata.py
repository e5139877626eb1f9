"""Finished offsets above the commit point, carried in the commit's metadata.

Kafka keeps a short string beside each committed offset. Ours is
``cdp-connector/<version> <instance>`` and, when records above the commit point
already have an outcome, one more field ``done:<base64>`` that says which. A
restarted process or a new owner reads it back on assignment and treats those
records as finished (counted, not posted), so what is posted twice is what was
really in flight, not everything behind the slowest record.

The field, after base64 (standard alphabet, padding stripped), is:

    byte 0     format version (1)
    byte 1     encoding: ``R`` run lengths or ``B`` bitmap
    varint     the committed offset the field was written for (unsigned LEB128)
    the rest   R: unsigned LEB128 varints, alternating run lengths of unfinished
               and finished offsets, starting with an unfinished run (maybe 0)
               and ending with a finished run;
               B: bit i (byte i // 8, least significant bit first) set when
               offset commit+i is finished; trailing zero bytes dropped.

Offsets are relative to the committed offset, so the field means nothing
without it; it repeats that offset, so that metadata carried to another offset
(an offset reset or a mirror's translation that kept the string) is not read as
a claim about other records. Both encodings are computed and the smaller one kept, as Confluent's
Parallel Consumer does (its ``OffsetSimultaneousEncoder``): run lengths win when
finished offsets come in long runs, the bitmap when they are scattered.

Guarantees:
1. ``encode`` never returns metadata longer than ``max_bytes`` (Kafka's
   ``offset.metadata.max.bytes``, 4096 by default). A set that does not fit is
   cut to its lower offsets (``complete`` False): claiming fewer records
   finished only means more are posted again, never that one is skipped.
2. Any finished set within ``capacity(prefix)`` offsets above the commit point
   fits whole (a bitmap of that span fits). The tracker keeps each partition
   within that span, so in practice nothing is ever cut.
3. ``decode`` never raises: metadata written by someone else, by a newer format,
   for another committed offset, or damaged gives "nothing known" and a warning.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FIELD",
    "MAX_METADATA_BYTES",
    "Encoded",
    "capacity",
    "decode",
    "encode",
    "run_ahead_limit",
]

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 4096  # the broker's offset.metadata.max.bytes default
FORMAT_VERSION = 1
FIELD = "done:"
OWN_PREFIX = "cdp-connector/"
_RUNS = ord("R")
_BITMAP = ord("B")
_HEADER = 2 + 10  # version and encoding bytes, and at most 10 for the offset
# A damaged varint could claim billions of finished offsets; no real set is near this.
MAX_DECODED = 1_000_000


@dataclass(frozen=True, slots=True)
class Encoded:
    """Commit metadata, and whether it carries the whole finished set."""

    text: str
    complete: bool


def capacity(prefix: str, max_bytes: int = MAX_METADATA_BYTES) -> int:
    """How many offsets above the commit point any finished set may span and still fit."""
    room = max_bytes - len(prefix.encode()) - len(FIELD) - 1  # the space before the field
    body = room * 3 // 4 - _HEADER  # base64 without padding: 4 characters per 3 bytes
    return max(0, body * 8)


def run_ahead_limit(
    prefix: str, configured: int, batch: int, max_bytes: int = MAX_METADATA_BYTES
) -> int:
    """The tracker's ``max_ahead``: the configured bound, cut so that the finished set
    always fits although the consumer reads up to one more ``batch`` before it pauses."""
    return max(1, min(configured, capacity(prefix, max_bytes) - batch))


def encode(
    prefix: str, commit: int, finished: Sequence[int], max_bytes: int = MAX_METADATA_BYTES
) -> Encoded:
    """The metadata for committing ``commit`` with these finished offsets above it.

    ``finished`` is ascending; offsets below ``commit`` are committed anyway and left out.
    """
    relative = [offset - commit for offset in finished if offset >= commit]
    if not relative:
        return Encoded(prefix, True)
    text = _with_field(prefix, commit, relative)
    if len(text.encode()) <= max_bytes:
        return Encoded(text, True)
    span = capacity(prefix, max_bytes)
    kept = [r for r in relative if r < span]
    text = _with_field(prefix, commit, kept) if kept else prefix
    return Encoded(text, False)


def decode(metadata: str | None, commit: int) -> tuple[int, ...]:
    """The finished offsets above ``commit`` that ``metadata`` names, ascending.

    Empty when nothing is known: no metadata, ours without the field, or anything
    unreadable (which is logged as a warning; the records are then posted again).
    """
    if not metadata or commit < 0:  # no committed offset (librdkafka's OFFSET_INVALID)
        return ()
    if not metadata.startswith(OWN_PREFIX):
        log.warning("ignoring commit metadata not written by cdp-connector: %.80r", metadata)
        return ()
    at = metadata.rfind(f" {FIELD}")
    if at < 0:
        return ()
    try:
        written_for, relative = _decode_field(metadata[at + len(FIELD) + 1 :])
    except ValueError as exc:
        log.warning("ignoring unreadable finished offsets in commit metadata (%s): %.80r",
                    exc, metadata)  # fmt: skip
        return ()
    if written_for != commit:
        log.warning("ignoring finished offsets written for offset %d; the committed offset "
                    "is %d (reset or translated?)", written_for, commit)  # fmt: skip
        return ()
    return tuple(commit + r for r in relative)


# -- the field ---------------------------------------------------------------------


def _with_field(prefix: str, commit: int, relative: list[int]) -> str:
    runs = _runs(relative)
    bitmap = _bitmap(relative)
    kind, body = (_RUNS, runs) if len(runs) <= len(bitmap) else (_BITMAP, bitmap)
    raw = bytearray((FORMAT_VERSION, kind))
    _varint(raw, commit)
    raw += body
    return f"{prefix} {FIELD}{base64.b64encode(raw).decode().rstrip('=')}"


def _runs(relative: list[int]) -> bytes:
    out = bytearray()
    position = 0  # next relative offset not yet covered by a run
    i = 0
    while i < len(relative):
        start = relative[i]
        j = i + 1
        while j < len(relative) and relative[j] == relative[j - 1] + 1:
            j += 1
        _varint(out, start - position)
        _varint(out, j - i)
        position = relative[j - 1] + 1
        i = j
    return bytes(out)


def _bitmap(relative: list[int]) -> bytes:
    out = bytearray(relative[-1] // 8 + 1)
    for r in relative:
        out[r >> 3] |= 1 << (r & 7)
    return bytes(out)


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _decode_field(text: str) -> tuple[int, list[int]]:
    """The committed offset the field was written for, and the relative offsets."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    if len(raw) < 3:
        raise ValueError("too short")
    if raw[0] != FORMAT_VERSION:
        raise ValueError(f"format version {raw[0]}, this version reads {FORMAT_VERSION}")
    kind = raw[1]
    if kind not in (_RUNS, _BITMAP):
        raise ValueError(f"unknown encoding {kind:#x}")
    end = next((i for i in range(2, min(len(raw), 2 + 10)) if not raw[i] & 0x80), None)
    if end is None:
        raise ValueError("offset cut short")
    [written_for] = _varints(raw[2 : end + 1])
    body = raw[end + 1 :]
    if kind == _RUNS:
        return written_for, _decode_runs(body)
    bits = [i * 8 + bit for i, byte in enumerate(body) for bit in range(8) if byte >> bit & 1]
    return written_for, bits


def _varints(data: bytes) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte & 0x80:
            if shift > 63:
                raise ValueError("varint too long")
            continue
        values.append(value)
        value = shift = 0
    if shift:
        raise ValueError("varint cut short")
    return values


def _decode_runs(body: bytes) -> list[int]:
    values = _varints(body)
    if len(values) % 2:
        raise ValueError("truncated run lengths")
    if sum(values[1::2]) > MAX_DECODED:
        raise ValueError("more finished offsets than any real set")
    relative: list[int] = []
    position = 0
    for gap, length in zip(values[::2], values[1::2], strict=True):
        position += gap
        relative.extend(range(position, position + length))
        position += length
    return relative
