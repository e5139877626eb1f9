"""One integration test's Kafka side: its keyed topic, dead-letter topic and group.

The pipeline, guarantee and redelivery tests each produce to a topic of their own and
read back what the connector left there; what they share is here: creating the
topics, the connector config pointing at them, the group's committed offsets, and
reading a topic back (the dead letters).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.connector_proc import (
    ConnectorFactory,
    committed,
    end_offsets,
    wait_caught_up,
)
from tests.integration.kafka_helpers import create_topic

VIEW_ALL = str(Path(__file__).parent / "mappings" / "view-all.yaml")
# After the expected records arrived: how long a reader still waits for more (a record
# that should not be there, e.g. a dead letter written twice, shows up in that time).
LATE = 1.0


class TestStream:
    """A topic (keyed by guest), its dead-letter topic and a consumer group, named
    ``<prefix>-<unique>`` (``.dlq``) and ``<group_prefix>-<unique>``."""

    __test__ = False  # not a test class, whatever its name
    default_mapping: str | None = None  # a config's mapping unless the test sets one
    # What streams of the running test opened (registry clients): closed when it ends,
    # passed or failed (``close_opened``, the autouse fixture below). Left
    # to the garbage collector, a failed test's client closes its socket during a later
    # test, whose run then fails on the ResourceWarning.
    _opened: ClassVar[list[Callable[[], None]]] = []

    def close_when_done(self, close: Callable[[], None]) -> None:
        """Call ``close`` when the running test ends."""
        TestStream._opened.append(close)

    @staticmethod
    def close_opened() -> None:
        """Close what the streams of the test that just ended opened."""
        while TestStream._opened:
            TestStream._opened.pop()()

    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        unique: str,
        *,
        prefix: str,
        group_prefix: str,
        partitions: int,
        dlq_config: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.registry_url = registry_url
        self.topic = f"{prefix}-{unique}"
        self.dlq = f"{self.topic}.dlq"
        self.group = f"{group_prefix}-{unique}"
        self.partitions = partitions
        create_topic(bootstrap, self.topic, partitions)
        if dlq_config is None:
            create_topic(bootstrap, self.dlq, 1)
        else:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            topic = NewTopic(self.dlq, num_partitions=1, replication_factor=1, config=dlq_config)
            admin.create_topics([topic])[self.dlq].result(timeout=30)

    def config(
        self, factory: ConnectorFactory, sandbox_url: str, **sections: Any
    ) -> dict[str, Any]:
        """A connector config for this stream; ``sections`` are merged into the base
        ones (a dict into a dict section, anything else replaces it)."""
        base = factory.config(
            kafka={"group_id": self.group},
            topics=[{"name": self.topic, "decoder": "confluent"}],
            schema_registry={"url": self.registry_url},
            cdp={"base_url": sandbox_url, "region": None},
            dead_letter={"topic": self.dlq},
            **({} if self.default_mapping is None else {"mapping": self.default_mapping}),
        )
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return base

    def committed(self) -> dict[int, int]:
        return committed(self.bootstrap, self.group, self.topic, self.partitions)

    def end_offsets(self) -> dict[int, int]:
        return end_offsets(self.bootstrap, self.topic, self.partitions)

    def nothing_committed(self) -> bool:
        return self.committed() == {}

    def caught_up(self, timeout: float = 120) -> None:
        wait_caught_up(self.bootstrap, self.group, self.topic, self.partitions, timeout)

    def is_caught_up(self) -> bool:
        done = self.committed()
        return all(done.get(p, 0) >= end for p, end in self.end_offsets().items())

    def dead_letters(self, expected: int, timeout: float = 15) -> list[Message]:
        """Every dead letter (at least ``expected``, and what arrives ``LATE`` after)."""
        return read_topic(self.bootstrap, self.dlq, expected, timeout)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 15) -> list[Message]:
    """Every record of ``topic`` from the beginning, in (partition, offset) order: at
    least ``expected`` (waits up to ``timeout`` for them), then whatever arrives
    within ``LATE`` more."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < expected:
        found += [m for m in consumer.consume(100, timeout=0.3) if m.error() is None]
    found += [m for m in consumer.consume(100, timeout=LATE) if m.error() is None]
    consumer.close()
    return sorted(found, key=lambda m: (m.partition() or 0, m.offset() or 0))


@pytest.fixture(autouse=True)
def _close_test_streams() -> Iterator[None]:
    """What a test's streams opened is closed when it ends (``TestStream.close_when_done``)."""
    yield
    TestStream.close_opened()
