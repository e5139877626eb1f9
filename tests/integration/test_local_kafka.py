"""The project's own broker is a real Kafka: produce, consume, commit, read lag back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from scripts.services.common import REPO_ROOT, Background
from tests.integration.kafka_helpers import create_topic, describe_group, produce

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=count, timeout=0.5):
                assert msg.error() is None
                values.append(msg.value())
            if len(values) >= count:
                break
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def test_produced_records_are_consumed_back(bootstrap: str, unique: str) -> None:
    topic = f"roundtrip-{unique}"
    create_topic(bootstrap, topic, partitions=1)
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    produce(bootstrap, topic, sent)

    got = _consume(bootstrap, topic, f"g-{unique}", 50)

    assert got == [value for _, value in sent]


def test_consumer_groups_tool_reports_lag_after_commit(bootstrap: str, unique: str) -> None:
    topic, group = f"lag-{unique}", f"lag-group-{unique}"
    create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, [(None, b"x")] * 20)
    _consume(bootstrap, topic, group, 20)

    after_commit = describe_group(bootstrap, group)[(topic, 0)]
    assert (after_commit.current_offset, after_commit.lag) == (20, 0)

    produce(bootstrap, topic, [(None, b"y")] * 7)
    later = describe_group(bootstrap, group)[(topic, 0)]
    assert (later.current_offset, later.log_end_offset, later.lag) == (20, 27, 7)


def test_commit_of_explicit_offsets_is_what_the_tool_shows(bootstrap: str, unique: str) -> None:
    topic, group = f"explicit-{unique}", f"explicit-group-{unique}"
    create_topic(bootstrap, topic, partitions=2)
    produce(bootstrap, topic, [(None, b"a")] * 10, partition=0)
    produce(bootstrap, topic, [(None, b"b")] * 4, partition=1)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 6), TopicPartition(topic, 1, 4)], asynchronous=False
        )
    finally:
        consumer.close()

    rows = describe_group(bootstrap, group)
    assert rows[(topic, 0)].lag == 4
    assert rows[(topic, 1)].lag == 0


def _local_kafka(state: Path, *args: str) -> str:
    """The real scripts/local-kafka, with its state in ``state``; its stdout."""
    env = {**os.environ, "PYTHON": sys.executable, "LOCAL_KAFKA_STATE_DIR": str(state)}
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "local-kafka"), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_restart_keeps_the_data_and_the_port(tmp_path: Path, unique: str) -> None:
    state = tmp_path / "state"
    address = _local_kafka(state, "start").strip()
    try:
        bootstrap = address.removeprefix("bootstrap.servers=")
        topic = f"kept-{unique}"
        create_topic(bootstrap, topic, partitions=1)
        produce(bootstrap, topic, [(None, f"v{i}".encode()) for i in range(10)])
        assert len(_consume(bootstrap, topic, f"g1-{unique}", 10)) == 10

        # A client connected across the restart: the stopping broker closes its connection
        # first, so the port is in TIME_WAIT; the restart must take the same port anyway.
        connected = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g3-{unique}"})
        connected.list_topics(timeout=10)
        try:
            assert _local_kafka(state, "restart").splitlines()[-1] == address
        finally:
            connected.close()

        assert "running" in _local_kafka(state, "status")
        values = _consume(bootstrap, topic, f"g2-{unique}", 10)
        assert values == [f"v{i}".encode() for i in range(10)]
        assert describe_group(bootstrap, f"g1-{unique}")[(topic, 0)].current_offset == 10
    finally:
        _local_kafka(state, "stop")
    assert Background(state).running() is None
