"""Helpers for the operator-command tests: run a CLI command, craft dead letters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Message, Producer

from connector.settle.deadletter import error_headers
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


def headers_of(msg: Message) -> dict[str, str]:
    return {k: v.decode() for k, v in (msg.headers() or []) if v is not None}
