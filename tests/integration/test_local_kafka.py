"""The project's own broker is a real Kafka: produce, consume, commit, read lag back."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

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
