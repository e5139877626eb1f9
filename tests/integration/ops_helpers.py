"""Helpers for the operator-command tests: run a CLI command, craft dead letters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Message, Producer

from connector.deadletter import error_headers
from tests.integration.connector_proc import REPO_ROOT, minimal_env


def write_config(tmp: Path, config: dict[str, Any], name: str = "connector.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m connector ARGS`` as an operator runs it; stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=REPO_ROOT,
        env=minimal_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def produce_dead_letters(
    bootstrap: str,
    dlq: str,
    topic: str,
    letters: list[tuple[bytes, bytes, str]],
    extra_headers: tuple[tuple[str, bytes], ...] = (),
) -> None:
    """Write dead letters as the connector does: (key, value, stage) with error headers."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for offset, (key, value, stage) in enumerate(letters):
        headers = [
            *extra_headers,
            *error_headers(
                topic, 0, offset, stage=stage, exception="DeliveryRejected",
                message="HTTP 400: invalid", status=400 if stage == "deliver" else None,
            ),
        ]  # fmt: skip
        producer.produce(dlq, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 15) -> list[Message]:
    """Every record of ``topic`` (at least ``expected``), from the beginning."""
    import time
    import uuid

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < expected:
        found += [m for m in consumer.consume(100, timeout=0.3) if m.error() is None]
    found += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    consumer.close()
    return sorted(found, key=lambda m: (m.partition() or 0, m.offset() or 0))


def headers_of(msg: Message) -> dict[str, str]:
    return {k: v.decode() for k, v in (msg.headers() or []) if v is not None}
