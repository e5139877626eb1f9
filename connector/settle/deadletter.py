"""The dead-letter topic: a record that cannot be delivered is kept there, with why.

The original key, value and headers are copied as they were read; headers using
Kafka Connect's ``__connect.errors.*`` names say where and why it failed, so
tools that read Connect's dead-letter queues read ours. Our own ``cdp.errors.*``
headers add the rule, the HTTP status and the attempts, and for a delivery failure
which events of the record were delivered before one failed (``EVENTS_DELIVERED``,
so that ``replay-dlq`` posts only the rest). The producer is
idempotent with ``acks=all``: a record's outcome is durable only when the write
is acknowledged, and only then may its offset be committed. A write that fails
for good stops the connector: nothing is committed past a record that is nowhere.

A replayed dead letter (``replay-dlq``) that fails again is written back under the
coordinates of its first origin, with ``cdp.errors.replay.attempts`` one higher:
``Origin`` reads those from a dead letter's headers and writes them again, so
``run`` and ``replay-dlq`` produce dead letters through the same code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.cimpl import NewTopic

from connector.config import Settings
from connector.errors import TransientError
from connector.kafka import topics
from connector.mapping import MappedEvent
from connector.offsets.tracker import TopicPartition
from connector.records import Failure, Headers, ReadAt
from connector.run_state import RunState

__all__ = [
    "EVENTS_DELIVERED",
    "REPLAY_ATTEMPTS",
    "START_CHECK_SECONDS",
    "DeadLetterQueue",
    "Origin",
    "OriginOf",
    "delivered_events",
    "ensure_topic",
    "error_headers",
    "events_progress",
    "header_value",
    "producer_conf",
    "record_context",
    "replayed_origin",
    "verify_at_start",
]

log = logging.getLogger(__name__)

# How long `run` waits for the broker's metadata at start before going on without it.
START_CHECK_SECONDS = 10.0

# Kafka Connect's stage names (org.apache.kafka.connect.runtime.errors.Stage).
CONNECT_STAGES = {"decode": "VALUE_CONVERTER", "map": "TRANSFORMATION", "deliver": "TASK_PUT"}
CONNECTOR_NAME = "cdp-connector"
REPLAY_ATTEMPTS = "cdp.errors.replay.attempts"
EVENTS_DELIVERED = "cdp.errors.events.delivered"
_ERROR_HEADER_PREFIXES = ("__connect.errors.", "cdp.errors.")


def error_headers(
    topic: str,
    partition: int,
    offset: int,
    *,
    stage: str,
    exception: str,
    message: str,
    rule: str | None = None,
    status: int | None = None,
    attempts: int | None = None,
    events: str | None = None,
) -> list[tuple[str, str | bytes | None]]:
    """The headers that explain a dead letter."""
    headers = [
        ("__connect.errors.topic", topic),
        ("__connect.errors.partition", str(partition)),
        ("__connect.errors.offset", str(offset)),
        ("__connect.errors.connector.name", CONNECTOR_NAME),
        ("__connect.errors.task.id", "0"),
        ("__connect.errors.stage", CONNECT_STAGES.get(stage, stage.upper())),
        ("__connect.errors.class.name", exception),
        ("__connect.errors.exception.message", message),
        ("cdp.errors.stage", stage),
    ]
    if rule is not None:
        headers.append(("cdp.errors.rule", rule))
    if status is not None:
        headers.append(("cdp.errors.http.status", str(status)))
    if attempts is not None:
        headers.append(("cdp.errors.attempts", str(attempts)))
    if events is not None:
        headers.append((EVENTS_DELIVERED, events))
    return [(name, value.encode()) for name, value in headers]


def events_progress(failure: Failure) -> str | None:
    """``EVENTS_DELIVERED`` for a delivery failure, e.g.
    ``{"delivered":[{"index":0,"type":"VIEW"}],"failed":{"index":1,"type":"ADD"}}``."""
    if failure.event is None:
        return None
    delivered = [{"index": i, "type": t} for i, t in failure.delivered]
    failed = {"index": failure.event[0], "type": failure.event[1]}
    return json.dumps({"delivered": delivered, "failed": failed}, separators=(",", ":"))


def delivered_events(headers: Headers, events: Sequence[MappedEvent]) -> frozenset[int]:
    """Indices of ``events`` the dead letter says were delivered already (for
    ``Work.delivered``). An index counts only while the event there still has the
    type that was delivered (the mapping may have changed since); unreadable → none."""
    text = header_value(headers, EVENTS_DELIVERED)
    if text is None:
        return frozenset()
    try:
        named = {(int(e["index"]), str(e["type"])) for e in json.loads(text)["delivered"]}
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring unreadable %s header (%r): %s", EVENTS_DELIVERED, text, exc)
        return frozenset()
    return frozenset(i for i, t in named if 0 <= i < len(events) and events[i].event_type == t)


def header_value(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` as text (None when absent)."""
    found: str | None = None
    for key, value in headers or ():
        if key == name:
            found = value.decode(errors="replace") if isinstance(value, bytes) else value
    return found


def record_context(headers: Headers) -> dict[str, object]:
    """Log ``extra`` with the original record's topic/partition/offset from error headers."""
    topic = header_value(headers, "__connect.errors.topic")
    partition = header_value(headers, "__connect.errors.partition")
    offset = header_value(headers, "__connect.errors.offset")
    if topic is None or partition is None or offset is None:
        return {}
    return {"topic": topic, "partition": int(partition), "offset": int(offset)}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a dead letter's record first came from, and how often it was replayed.

    ``attempts`` is None for a record read from its own topic (``run``): its dead
    letter carries no replay count. For a replayed dead letter it is the count its
    headers carry (0 when never replayed before).
    """

    topic: str
    partition: int
    offset: int
    attempts: int | None
    headers: Headers  # the record's own headers, without our error headers

    @classmethod
    def read_at(cls, tp: TopicPartition, offset: int, headers: Headers) -> Origin:
        """A record read from its own topic: its coordinates are its origin."""
        return cls(tp[0], tp[1], offset, None, headers)

    @classmethod
    def of(cls, headers: Headers) -> Origin:
        """A dead letter read back: the origin its error headers name."""

        def number(name: str, default: int) -> int:
            value = header_value(headers, name)
            try:
                return int(value) if value is not None else default
            except ValueError:
                return default

        own = [(k, v) for k, v in headers or () if not k.startswith(_ERROR_HEADER_PREFIXES)]
        return cls(
            header_value(headers, "__connect.errors.topic") or "",
            number("__connect.errors.partition", -1),
            number("__connect.errors.offset", -1),
            number(REPLAY_ATTEMPTS, 0),
            own,
        )

    def error_headers(self, **why: Any) -> list[tuple[str, str | bytes | None]]:
        """``error_headers`` at this origin, plus the replay count when replayed."""
        headers = error_headers(self.topic, self.partition, self.offset, **why)
        if self.attempts is None:
            return headers
        return [*headers, (REPLAY_ATTEMPTS, str(self.attempts + 1).encode())]

    @property
    def log_context(self) -> dict[str, object]:
        """The origin's coordinates as log ``extra`` fields."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


OriginOf = Callable[[TopicPartition, int, Headers], Origin]


def replayed_origin(_tp: TopicPartition, _offset: int, headers: Headers) -> Origin:
    """``OriginOf`` for records read from the dead-letter topic (``replay-dlq``)."""
    return Origin.of(headers)


def producer_conf(base: dict[str, Any]) -> dict[str, Any]:
    """The dead-letter producer's settings: a write is an outcome only once durable."""
    return {
        **base,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "message.timeout.ms": 120_000,
    }


class DeadLetterQueue:
    """Produces dead letters; calls ``on_done`` only when Kafka acknowledged the write.

    ``producer`` is a confluent ``Producer`` built with ``producer_conf`` (the wiring
    place builds it; tests pass a fake). ``origin_of`` says where a failed record
    came from: ``Origin.read_at`` for ``run``, ``replayed_origin`` for ``replay-dlq``.
    """

    def __init__(
        self,
        producer: Producer,
        topic: str,
        state: RunState,
        on_written: Callable[[str], None] | None = None,
        origin_of: OriginOf = Origin.read_at,
    ) -> None:
        self.topic = topic
        self._state = state
        self._on_written = on_written or (lambda _stage: None)  # called with the failing stage
        self._origin_of = origin_of
        self._producer = producer

    def publish(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        original_headers: Headers,
        headers: list[tuple[str, str | bytes | None]],
        on_done: Callable[[], None],
    ) -> None:
        """Queue one dead letter; thread-safe."""

        def delivered(err: KafkaError | KafkaException | None, _msg: Message | None) -> None:
            if err is not None:
                log.error("dead-letter write failed: %s", err, extra=record_context(headers))
                self._state.fail(f"dead-letter write to {self.topic!r} failed: {err}")
                return
            self._on_written(header_value(headers, "cdp.errors.stage") or "unknown")
            on_done()

        all_headers: list[tuple[str, str | bytes | None]] = [*(original_headers or []), *headers]
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=all_headers, on_delivery=delivered
                )
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let acknowledgements drain
            except KafkaException as exc:
                # Refused before it was queued (the topic is already known not to exist):
                # a failed write like any other, not a crash of the calling thread.
                delivered(exc, None)
                return

    def publish_failure(
        self, record: ReadAt, failure: Failure, on_done: Callable[[], None]
    ) -> None:
        """Dead-letter ``record`` for ``failure``; thread-safe.

        Called by settle (decode and map failures, consumer thread: a ``ConsumedRecord``)
        and by dispatch (delivery failures, event loop: a ``Work``)."""
        origin = self._origin_of(record.tp, record.offset, record.headers)
        log.warning("dead-lettering record (%s): %s", failure.stage, failure.reason,
                    extra=origin.log_context)  # fmt: skip
        self.publish(
            key=record.key,
            value=record.value,
            original_headers=origin.headers,
            headers=origin.error_headers(
                stage=failure.stage,
                exception=failure.exception,
                message=failure.reason,
                rule=failure.rule,
                status=failure.status,
                attempts=failure.attempts,
                events=events_progress(failure),
            ),
            on_done=on_done,
        )

    def poll(self, timeout: float = 0.0) -> None:
        """Serve acknowledgements (callbacks run on the calling thread)."""
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding writes; returns how many are still unacknowledged."""
        return int(self._producer.flush(timeout))


def ensure_topic(settings: Settings, timeout: float, *, validate_only: bool = False) -> str:
    """The dead-letter topic exists, or is created as ``dead_letter`` says; a one-line detail.

    ``run`` calls it at start (through ``verify_at_start``), ``check`` with
    ``validate_only``; the rules and errors are ``connector.kafka.topics.ensure_topic``'s.
    """
    dl = settings.dead_letter
    new = NewTopic(dl.topic, num_partitions=dl.partitions, replication_factor=dl.replication_factor)
    return topics.ensure_topic(
        settings.kafka,
        new,
        create=dl.create_topic,
        section="dead_letter",
        timeout=timeout,
        validate_only=validate_only,
    )


def verify_at_start(settings: Settings) -> None:
    """``run``'s start-up check: ConfigError (exit 2) when the dead-letter topic is missing
    and cannot be created. A broker that does not answer is only a warning: the consumer
    waits for the broker as it always does, and the topic is checked at the next start."""
    try:
        detail = ensure_topic(settings, START_CHECK_SECONDS)
    except TransientError as exc:
        log.warning("dead-letter topic %s not verified: %s", settings.dead_letter.topic, exc)
        return
    log.info("dead-letter topic %s: %s", settings.dead_letter.topic, detail)
