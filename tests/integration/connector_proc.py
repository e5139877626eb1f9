"""Run the real connector (`python -m connector run`) as a subprocess in tests.

``connector_factory.start`` returns once the connector listens and — unless
``wait_assigned=False`` (a replica that may get no partition) — owns at least one
partition. The subprocess gets a minimal environment (``minimal_env``), not the
developer's. On teardown every connector still running is stopped with SIGTERM
(SIGKILL only if it does not exit in time, which fails the test), and the test
fails when a connector's log has a traceback or an ERROR line the test did not
declare with ``expect_errors`` (regular expressions matched against the line).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.sample_clickstream import writable
from scripts.services.common import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# v3 (a superset of v1 with defaults): the sitecore example maps page.utm, which v3 added
SCHEMA = REPO_ROOT / "avro" / "clickstream-v3.avsc"

#: What a subprocess needs from the developer's environment; everything else stays out.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
#: How long a connector may take to exit on SIGTERM at teardown (drain + leave + margin).
STOP_TIMEOUT = 45.0


def minimal_env(extra: Mapping[str, str]) -> dict[str, str]:
    """``PASSED_ENV`` from this process plus ``extra`` (what the test sets)."""
    return {**{k: os.environ[k] for k in PASSED_ENV if k in os.environ}, **extra}


def log_problems(text: str, expected: Iterable[re.Pattern[str]]) -> list[str]:
    """Lines of a connector log with a traceback or an ERROR/CRITICAL record that no
    pattern in ``expected`` matches (JSON lines; any other line counts when it holds a
    traceback)."""
    patterns = list(expected)
    problems = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            bad = record.get("level") in ("error", "critical") or "exc" in record
        elif "Traceback (most recent call last)" in line:
            bad = True
            line = raw_traceback(lines, i)
        else:
            bad = False
        if bad and not any(p.search(line) for p in patterns):
            problems.append(line[:2000])
    return problems


def raw_traceback(lines: list[str], start: int) -> str:
    """A traceback printed outside the JSON log (stderr), from its first line to the
    exception it ends with, as one line: the exception is what a failure report needs."""
    block = [lines[start]]
    for line in lines[start + 1 : start + 200]:
        block.append(line)
        if line and not line[0].isspace():  # the exception line ends the block
            break
    return " | ".join(block)


@dataclass
class ConnectorProcess:
    proc: subprocess.Popen[bytes]
    config: Path
    port: int
    log: Path
    expected_errors: list[re.Pattern[str]] = field(default_factory=list)

    def expect_errors(self, *patterns: str) -> None:
        """Declare log lines (regular expressions) this test expects at ERROR level."""
        self.expected_errors.extend(re.compile(p) for p in patterns)

    def log_problems(self) -> list[str]:
        """Tracebacks and undeclared ERROR lines in this connector's log so far."""
        return log_problems(self.output(), self.expected_errors)

    def _get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:  # the error holds the open response
                return exc.code, exc.read()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self._get("/readyz")
        return status, json.loads(body)

    def metrics(self) -> str:
        return self._get("/metrics")[1].decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"connector exited {self.proc.returncode}:\n{self.output()}")
            try:
                self._get("/healthz")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"connector never listened:\n{self.output()}")

    def assigned(self) -> int:
        """Partitions this replica owns right now (from /readyz)."""
        return int(self.readyz()[1].get("assigned_partitions", 0))

    def wait_assigned(self, timeout: float = 60) -> None:
        """Until the connector owns at least one partition (the rebalance finished)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"connector exited {self.proc.returncode}:\n{self.output()}")
            if self.assigned() > 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"connector never got a partition:\n{self.output()}")

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = STOP_TIMEOUT) -> str | None:
        """SIGTERM and wait; SIGKILL if it does not exit in ``timeout`` (then: why)."""
        try:
            self.terminate(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return f"{self.log.name}: did not exit within {timeout:g} s of SIGTERM"
        return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class ConnectorFactory:
    tmp: Path
    bootstrap: str
    env: dict[str, str]
    started: list[ConnectorProcess] = field(default_factory=list)

    def config(self, **sections: Any) -> dict[str, Any]:
        """A connector.yaml for tests; ``sections`` override top-level sections."""
        base: dict[str, Any] = {
            "kafka": {"bootstrap_servers": self.bootstrap, "commit_interval_seconds": 0.5},
            "mapping": str(REPO_ROOT / "config" / "mappings.example.yaml"),
            "observability": {"host": "127.0.0.1", "log_format": "json"},
            "shutdown": {"drain_timeout_seconds": 10},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return base

    def start(
        self,
        config: dict[str, Any],
        name: str = "connector",
        *,
        wait_listening: bool = True,
        wait_assigned: bool = True,
        expect_errors: Iterable[str] = (),
    ) -> ConnectorProcess:
        """Start ``cdp-connector run``; returns when it listens (``wait_listening``; not
        for a process that is to stop at start) and owns a partition (``wait_assigned``).
        ``expect_errors``: ERROR log lines (regular expressions) this test expects; any
        other ERROR line or traceback fails the test at teardown."""
        port = free_port()
        config = {**config, "observability": {**config["observability"], "port": port}}
        path = self.tmp / f"{name}-{len(self.started)}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = self.tmp / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", "--config", str(path)],
                cwd=REPO_ROOT,
                env=minimal_env(self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running = ConnectorProcess(proc, path, port, log)
        running.expect_errors(*expect_errors)
        self.started.append(running)
        if not wait_listening:
            return running
        running.wait_listening()
        if wait_assigned:
            running.wait_assigned()
        return running

    def teardown(self) -> list[str]:
        """Stop every connector still running; what went wrong in any of them."""
        problems = [why for running in self.started if (why := running.stop()) is not None]
        for running in self.started:
            problems += [f"{running.log.name}: {line}" for line in running.log_problems()]
        return problems


@pytest.fixture
def connector_factory(
    tmp_path: Path, bootstrap: str, cdp_sandbox: Any
) -> Iterator[ConnectorFactory]:
    env = {"CDP_CLIENT_KEY": cdp_sandbox.client_key, "CDP_API_TOKEN": cdp_sandbox.api_token}
    factory = ConnectorFactory(tmp_path, bootstrap, env)
    yield factory
    problems = factory.teardown()
    if problems:
        pytest.fail("connector log problems:\n" + "\n".join(problems), pytrace=False)


def avro_serializer(
    client: SchemaRegistryClient,
) -> Callable[[dict[str, Any], str], bytes]:
    """confluent-kafka's own AvroSerializer: the bytes real producers write."""
    serializer = AvroSerializer(client, SCHEMA.read_text(), to_dict=writable)

    def serialize(record: dict[str, Any], topic: str) -> bytes:
        return bytes(serializer(record, SerializationContext(topic, MessageField.VALUE)))

    return serialize


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets per partition (missing = nothing committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        for attempt in range(20):
            try:
                tps = consumer.committed(wanted, timeout=10)
                break
            except KafkaException:  # NOT_COORDINATOR while a fresh group's coordinator loads
                if attempt == 19:
                    raise
                time.sleep(0.25)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets-probe"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def wait_caught_up(
    bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 90
) -> None:
    """Until the group has committed the end of every partition (lag 0)."""
    ends = end_offsets(bootstrap, topic, partitions)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = committed(bootstrap, group, topic, partitions)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return
        time.sleep(0.3)
    raise AssertionError(f"group {group} did not catch up: {done} vs ends {ends}")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
