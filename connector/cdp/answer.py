"""What an answer from the CDP means for the record that was sent: a pure function.

    DELIVERED   2xx                                       → record done
    RETRYABLE   network error, timeout, 408, 429, 5xx     → try again (honour retry_after)
    PERMANENT   any other 4xx                             → this record to the dead letter
    FATAL       401, 403; or a 3xx (wrong base URL)       → halt the connector

Kept free of I/O so every branch is tested without a server.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from http import HTTPStatus

__all__ = [
    "MAX_REASON_CHARS",
    "Answer",
    "Outcome",
    "classify",
    "network_error",
    "parse_retry_after",
]

#: How much of an answer body a reason keeps (bodies may be large HTML error pages).
MAX_REASON_CHARS = 300


class Outcome(Enum):
    """The four things a sender can do with an answer."""

    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class Answer:
    """The classified answer to one POST; ``status`` is None when no HTTP answer came."""

    outcome: Outcome
    status: int | None
    reason: str
    retry_after: float | None = None
    ref: str | None = None


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Answer:
    """Classify one HTTP answer; ``now`` (epoch seconds) resolves an HTTP-date Retry-After."""
    if 200 <= status < 300:
        return Answer(Outcome.DELIVERED, status, "OK", ref=_ref(body))
    if status in (401, 403):
        return Answer(Outcome.FATAL, status, _reason(status, body))
    if status in (408, 429) or 500 <= status < 600:
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        return Answer(Outcome.RETRYABLE, status, _reason(status, body), retry_after)
    if 400 <= status < 500:
        return Answer(Outcome.PERMANENT, status, _reason(status, body))
    if 300 <= status < 400:
        # Redirects are not followed (a POST body would be lost or re-sent elsewhere);
        # one means the base URL is wrong, which no retry or dead letter fixes.
        where = headers.get("Location", "?")
        return Answer(Outcome.FATAL, status, f"unexpected redirect to {where[:200]}")
    return Answer(Outcome.RETRYABLE, status, _reason(status, body))


def network_error(exc: BaseException) -> Answer:
    """The answer for a request that got no HTTP answer (connect, reset, timeout)."""
    if isinstance(exc, TimeoutError):
        return Answer(Outcome.RETRYABLE, None, "timeout waiting for the CDP")
    detail = str(exc)[:MAX_REASON_CHARS]
    name = type(exc).__name__
    return Answer(Outcome.RETRYABLE, None, f"network error: {name}: {detail}" if detail else name)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _ref(body: bytes) -> str | None:
    """The ``ref`` of a JSON answer body (None without one). The usual answer, a leading
    ``"ref"`` without escapes, is read without a JSON parse (~2 µs); anything else, a ref
    that is not UTF-8 included, goes through the parse, so both read a body alike."""
    if body.startswith(b'{"ref":"'):
        end = body.find(b'"', 8)
        if end > 8 and body[end + 1 : end + 2] in (b",", b"}") and b"\\" not in body[8:end]:
            with contextlib.suppress(UnicodeDecodeError):
                return body[8:end].decode()
    if not body.startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    ref = data.get("ref") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) else None


def _reason(status: int, body: bytes) -> str:
    """A short human reason: the body's error message if it has one, else its text."""
    text = body[: MAX_REASON_CHARS * 4].decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            for key in ("error", "message", "reason", "detail", "errors"):
                if data.get(key):
                    value = data[key]
                    text = value if isinstance(value, str) else json.dumps(value)
                    break
    if not text:
        try:
            text = HTTPStatus(status).phrase
        except ValueError:
            text = f"HTTP {status}"
    return f"{status}: {text[:MAX_REASON_CHARS]}"
