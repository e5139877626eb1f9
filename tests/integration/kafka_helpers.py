"""Small helpers for integration tests that talk to the real broker."""

from __future__ import annotations

import re
from dataclasses import dataclass

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from scripts.services import kafka


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)


def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes]],
    partition: int | None = None,
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for key, value in records:
        if partition is None:
            producer.produce(topic, key=key, value=value)
        else:
            producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


@dataclass(frozen=True)
class GroupLag:
    partition: int
    current_offset: int | None
    log_end_offset: int
    lag: int | None


def describe_group(bootstrap: str, group: str) -> dict[tuple[str, int], GroupLag]:
    """Committed offsets and lag per partition, as Kafka's consumer-groups tool prints them."""
    out = kafka.run_tool(
        "consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group
    ).stdout
    rows: dict[tuple[str, int], GroupLag] = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 6 or cols[0] != group or not re.fullmatch(r"\d+", cols[2]):
            continue

        def num(text: str) -> int | None:
            return None if text == "-" else int(text)

        end = num(cols[4])
        assert end is not None
        rows[(cols[1], int(cols[2]))] = GroupLag(int(cols[2]), num(cols[3]), end, num(cols[5]))
    return rows
