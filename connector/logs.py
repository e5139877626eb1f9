"""Logging: JSON lines in containers, readable key=value on a terminal.

Records about one Kafka record carry ``topic``, ``partition`` and ``offset``
(pass them in ``extra``); both formats print them. Secrets never reach a log
line: settings hold them as ``SecretStr`` and no code formats a credential.

Kafka client errors repeat while a broker is away (every reconnect attempt of every
client, once from librdkafka's log and once from the ``error_cb``): ``RepeatFilter``
on both loggers lets one line per distinct error through per interval, and the next
one says how many it held back.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "KAFKA_LOGGER",
    "LIBRDKAFKA_LOGGER",
    "JsonFormatter",
    "RepeatFilter",
    "TextFormatter",
    "error_key",
    "setup_logging",
]

_CONTEXT = ("topic", "partition", "offset")
LIBRDKAFKA_LOGGER = "librdkafka"  # KafkaSettings.admin_conf hands it to every client
KAFKA_LOGGER = "connector.kafka"  # the connector's own lines about Kafka client errors
REPEAT_INTERVAL = 30.0  # seconds: librdkafka's reconnect back-off tops out at 10 s

# What differs between repeats of one error: librdkafka's "FAC [client] [thrd:...]: "
# prefix, our "Kafka client error: " one, and the timings and counts it appends.
_PREFIX = re.compile(r"^(?:\w+ \[[^\]]*\] )?(?:\[thrd:[^\]]*\]: )?(?:Kafka \w+ error: )?")
_SUPPRESSED = re.compile(r", \d+ identical error\(s\) suppressed")
_MILLISECONDS = re.compile(r"\d+ ?ms\b")


def error_key(message: str) -> str:
    """The same Kafka error, whichever client and path logged it, and however often."""
    text = _SUPPRESSED.sub("", _PREFIX.sub("", message))
    return _MILLISECONDS.sub("#ms", text)


def _record_key(record: logging.LogRecord) -> str:
    return error_key(record.getMessage())


class RepeatFilter(logging.Filter):
    """Lets the first record of each key through per ``interval``; holds back the rest
    and appends "(N more in the last Xs)" to the next one it lets through. Records below
    warning pass untouched: librdkafka's ``debug`` output is asked for whole.

    Thread-safe (librdkafka logs from whichever thread polls its client). Held-back
    repeats are reported with the next occurrence, not by a timer."""

    def __init__(
        self,
        interval: float = REPEAT_INTERVAL,
        key: Callable[[logging.LogRecord], str] = _record_key,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval = interval
        self._key = key
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # key → (let through at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        """``logging.Filter``: False for a repeat within the interval; the next one let
        through says how many were held back."""
        if record.levelno < logging.WARNING:
            return True
        key = self._key(record)
        with self._lock:
            now = self._clock()
            since, held = self._seen.get(key, (-self._interval, 0))
            if now - since < self._interval:
                self._seen[key] = (since, held + 1)
                return False
            if len(self._seen) > 1000:  # distinct errors come and go: forget quiet ones
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._interval}
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.getMessage()} ({held} more in the last {now - since:.0f}s)"
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, record context."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line, with its context fields and exception text."""
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line: time, level, logger, message, context."""
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in _CONTEXT if hasattr(record, key)
        )
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            text = f"{text} {context}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def setup_logging(fmt: Literal["auto", "json", "text"], level: str) -> None:
    """Configure the root logger once for the process (stderr)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    repeats = RepeatFilter()  # one instance: both paths of one error share a key
    for name in (LIBRDKAFKA_LOGGER, KAFKA_LOGGER):
        kafka = logging.getLogger(name)
        kafka.filters[:] = [repeats]
