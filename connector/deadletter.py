"""The dead-letter topic: a record that cannot be delivered is kept there, with why.

The original key, value and headers are copied as they were read; headers using
Kafka Connect's ``__connect.errors.*`` names say where and why it failed, so
tools that read Connect's dead-letter queues read ours. Our own ``cdp.errors.*``
headers add the rule, the HTTP status and the attempts. The producer is
idempotent with ``acks=all``: a record's outcome is durable only when the write
is acknowledged, and only then may its offset be committed. A write that fails
for good stops the connector: nothing is committed past a record that is nowhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.cimpl import NewTopic

from connector import topics
from connector.config import Settings
from connector.dispatch import Failure, Headers, Work
from connector.errors import TransientError
from connector.state import RunState

log = logging.getLogger(__name__)

# How long `run` waits for the broker's metadata at start before going on without it.
START_CHECK_SECONDS = 10.0

# Kafka Connect's stage names (org.apache.kafka.connect.runtime.errors.Stage).
CONNECT_STAGES = {"decode": "VALUE_CONVERTER", "map": "TRANSFORMATION", "deliver": "TASK_PUT"}
CONNECTOR_NAME = "cdp-connector"


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
    return [(name, value.encode()) for name, value in headers]


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
    ``validate_only``; the rules and errors are ``connector.topics.ensure_topic``'s.
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
