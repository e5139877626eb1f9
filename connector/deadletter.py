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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connector.dispatch import Failure, Headers, Work
from connector.mapping import MappedEvent
from connector.state import RunState

log = logging.getLogger(__name__)

# Kafka Connect's stage names (org.apache.kafka.connect.runtime.errors.Stage).
CONNECT_STAGES = {"decode": "VALUE_CONVERTER", "map": "TRANSFORMATION", "deliver": "TASK_PUT"}
CONNECTOR_NAME = "cdp-connector"
EVENTS_DELIVERED = "cdp.errors.events.delivered"


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


class DeadLetterQueue:
    """Produces dead letters; calls ``on_done`` only when Kafka acknowledged the write."""

    def __init__(
        self,
        producer_conf: dict[str, Any],
        topic: str,
        state: RunState,
        on_written: Callable[[str], None] | None = None,
    ) -> None:
        self.topic = topic
        self._state = state
        self._on_written = on_written or (lambda _stage: None)  # called with the failing stage
        self._producer = Producer(
            {
                **producer_conf,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 20,
                "message.timeout.ms": 120_000,
            }
        )

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

        def delivered(err: KafkaError | None, _msg: Message) -> None:
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

    def publish_work(self, work: Work, failure: Failure, on_done: Callable[[], None]) -> None:
        """A record whose delivery failed (permanent answer or retries exhausted)."""
        topic, partition = work.tp
        log.warning(
            "dead-lettering record: %s",
            failure.reason,
            extra={"topic": topic, "partition": partition, "offset": work.offset},
        )
        self.publish(
            key=work.key,
            value=work.value,
            original_headers=work.headers,
            headers=error_headers(
                topic,
                partition,
                work.offset,
                stage="deliver",
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
