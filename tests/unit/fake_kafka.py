"""Stand-ins for confluent-kafka's Consumer and Message, and the source's neighbours,
for unit tests of the consumer thread's decisions (no broker)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from connector.config import Settings
from connector.mapping import MappedEvent, MapResult
from connector.offsets import TopicPartition
from connector.records import Failure, Headers, Work


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None = b"v") -> None:
        self._coords = (topic, partition, offset)
        self._value = value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._coords[0]

    def partition(self) -> int:
        return self._coords[1]

    def offset(self) -> int:
        return self._coords[2]

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers:
        return [("trace", b"t")]

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


class FakeConsumer:
    """Records pauses and commits; ``batches`` are what consume() returns, in turn."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.batches: deque[list[FakeMessage]] = deque()
        self.paused: set[TopicPartition] = set()
        self.commits: list[tuple[dict[TopicPartition, int], bool]] = []
        self.fail_commits = False
        self.closed = False
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.asked: list[int] = []  # num_messages of each consume()
        self.topics: set[str] | None = None  # what list_topics() finds (None: the subscribed)
        self.subscribed: list[str] = []
        self.in_callback = False

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.callbacks = callbacks
        self.subscribed = topics

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.asked.append(num_messages)
        return self.batches.popleft() if self.batches else []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        """Cluster metadata as confluent-kafka shapes it: ``.topics`` name → TopicMetadata.

        Refused inside a rebalance callback: the real client aborts the process there
        when a log callback fires during the call."""
        assert not self.in_callback, "list_topics inside a rebalance callback"
        names = self.subscribed if self.topics is None else self.topics
        return SimpleNamespace(topics={n: SimpleNamespace(error=None) for n in names})

    def pause(self, partitions: list[KafkaTP]) -> None:
        self.paused |= {(p.topic, p.partition) for p in partitions}

    def resume(self, partitions: list[KafkaTP]) -> None:
        self.paused -= {(p.topic, p.partition) for p in partitions}

    def commit(self, *, offsets: list[KafkaTP], asynchronous: bool) -> None:
        if self.fail_commits:
            raise KafkaException("commit failed")
        self.commits.append(({(p.topic, p.partition): p.offset for p in offsets}, asynchronous))

    def close(self) -> None:
        self.closed = True

    # rebalances, as librdkafka would run them inside consume()
    def assign(self, *tps: TopicPartition) -> None:
        self.in_callback = True
        try:
            self.callbacks["on_assign"](self, [KafkaTP(t, p) for t, p in tps])
        finally:
            self.in_callback = False

    def revoke(self, *tps: TopicPartition) -> None:
        self.callbacks["on_revoke"](self, [KafkaTP(t, p) for t, p in tps])


class FakeHandoff:
    """What the source hands to dispatch; ``on_release`` runs as the drain would."""

    def __init__(self) -> None:
        self.works: list[Work] = []
        self.released: list[set[TopicPartition]] = []
        self.on_release: Callable[[set[TopicPartition]], None] = lambda _tps: None

    def submit(self, works: list[Work]) -> None:
        self.works.extend(works)

    def release(self, tps: set[TopicPartition], timeout: float) -> None:
        self.released.append(tps)
        self.on_release(tps)


class FakeDeadLetters:
    """Acknowledges every dead letter at once."""

    def __init__(self) -> None:
        self.failures: list[tuple[TopicPartition, int, Failure]] = []

    def publish_failure(
        self,
        tp: TopicPartition,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        failure: Failure,
        on_done: Callable[[], None],
    ) -> None:
        self.failures.append((tp, offset, failure))
        on_done()

    def poll(self, timeout: float = 0.0) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0


def settings(**delivery: Any) -> Settings:
    return Settings.model_validate(
        {
            "topics": [{"name": "clicks", "decoder": "schemaless", "schema": "clicks.avsc"}],
            "mapping": "mappings.yaml",
            "delivery": delivery,
            "kafka": {"commit_interval_seconds": 60, "poll_batch": 500},
            "shutdown": {"drain_timeout_seconds": 0.2},
        }
    )


def one_event(topic: str, value: bytes | None) -> MapResult:
    """A prepare that maps every record to one VIEW event of guest ``g``."""
    return MapResult((MappedEvent("rule", "VIEW", "g", b"{}"),), None)
