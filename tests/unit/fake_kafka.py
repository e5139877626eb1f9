"""Stand-ins for confluent-kafka's Consumer and Message, and the source's neighbours,
for unit tests of the consumer thread's decisions (no broker)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from connector.config import Settings
from connector.mapping import MappedEvent, MapResult
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import Failure, Headers, ReadAt, Work


class FakeMessage:
    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None = b"v",
        headers: Headers = None,
    ) -> None:
        self._coords = (topic, partition, offset)
        self._value = value
        self._headers = headers if headers is not None else [("trace", b"t")]

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
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


class FakeConsumer:
    """Records pauses and commits; ``batches`` are what consume() returns, in turn.

    ``committed()`` answers from what was committed (offsets and metadata), as the
    group coordinator would; ``close()`` revokes what is assigned, as librdkafka does;
    ``fatal`` is raised by consume() as confluent-kafka raises a fatal error."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.batches: deque[list[FakeMessage]] = deque()
        self.paused: set[TopicPartition] = set()
        self.pause_calls: list[set[TopicPartition]] = []
        self.commits: list[tuple[dict[TopicPartition, int], bool]] = []
        self.group: dict[TopicPartition, tuple[int, str]] = {}  # committed offset, metadata
        self.fail_commits = False
        self.fatal: KafkaError | None = None
        self.closed = False
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.asked: list[int] = []  # num_messages of each consume()
        self.topics: set[str] | None = None  # what list_topics() finds (None: the subscribed)
        self.subscribed: list[str] = []
        self.in_callback = False
        self.assignment: set[TopicPartition] = set()
        self.on_consume: Callable[[], None] = lambda: None

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.callbacks = callbacks
        self.subscribed = topics

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.asked.append(num_messages)
        self.on_consume()
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        return self.batches.popleft() if self.batches else []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        """Cluster metadata as confluent-kafka shapes it: ``.topics`` name → TopicMetadata.

        Refused inside a rebalance callback: the real client aborts the process there
        when a log callback fires during the call."""
        assert not self.in_callback, "list_topics inside a rebalance callback"
        names = self.subscribed if self.topics is None else self.topics
        return SimpleNamespace(topics={n: SimpleNamespace(error=None) for n in names})

    def pause(self, partitions: list[KafkaTP]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self.pause_calls.append(tps)
        self.paused |= tps

    def resume(self, partitions: list[KafkaTP]) -> None:
        self.paused -= {(p.topic, p.partition) for p in partitions}

    def commit(self, *, offsets: list[KafkaTP], asynchronous: bool) -> None:
        if self.fail_commits:
            raise KafkaException("commit failed")
        self.commits.append(({(p.topic, p.partition): p.offset for p in offsets}, asynchronous))
        for p in offsets:
            self.group[(p.topic, p.partition)] = (p.offset, p.metadata)

    def committed(self, partitions: list[KafkaTP], timeout: float = -1) -> list[KafkaTP]:
        answer = []
        for p in partitions:
            offset, metadata = self.group.get((p.topic, p.partition), (OFFSET_INVALID, ""))
            answer.append(KafkaTP(p.topic, p.partition, offset, metadata=metadata))
        return answer

    def close(self) -> None:
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        if self.assignment:
            self.revoke(*sorted(self.assignment))
        self.closed = True

    # rebalances, as librdkafka would run them inside consume()
    def assign(self, *tps: TopicPartition) -> None:
        self.assignment |= set(tps)
        self.in_callback = True
        try:
            self.callbacks["on_assign"](self, [KafkaTP(t, p) for t, p in tps])
        finally:
            self.in_callback = False

    def revoke(self, *tps: TopicPartition) -> None:
        self.assignment -= set(tps)
        self.callbacks["on_revoke"](self, [KafkaTP(t, p) for t, p in tps])

    def lose(self, *tps: TopicPartition) -> None:
        self.assignment -= set(tps)
        self.callbacks["on_lost"](self, [KafkaTP(t, p) for t, p in tps])


class FakeHandoff:
    """What the source hands to dispatch; ``on_release`` runs as the drain would."""

    def __init__(self) -> None:
        self.works: list[Work] = []
        self.batches: list[int] = []  # records per hand-over
        self.waits: list[float] = []  # timeouts of ``wait_for_room``
        self.room: Callable[[], bool] = lambda: True
        self.released: list[set[TopicPartition]] = []
        self.timeouts: list[float] = []
        self.on_release: Callable[[set[TopicPartition]], None] = lambda _tps: None
        self.stopped = False

    def submit(self, works: list[Work]) -> None:
        self.works.extend(works)
        self.batches.append(len(works))

    def wait_for_room(self, timeout: float) -> bool:
        """The dispatcher wants more while ``room`` says so (default: always)."""
        self.waits.append(timeout)
        return self.room()

    def release(
        self, tps: set[TopicPartition], timeout: float, poll: Callable[[], bool] | None = None
    ) -> bool:
        self.released.append(tps)
        self.timeouts.append(timeout)
        self.on_release(tps)
        return True

    def stop(self, timeout: float) -> None:
        self.stopped = True


class FakeDeadLetters:
    """Acknowledges every dead letter at once."""

    def __init__(self) -> None:
        self.failures: list[tuple[TopicPartition, int, Failure]] = []

    def publish_failure(
        self, record: ReadAt, failure: Failure, on_done: Callable[[], None]
    ) -> None:
        self.failures.append((record.tp, record.offset, failure))
        on_done()

    def poll(self, timeout: float = 0.0) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0


def settings(drain: float = 0.2, **delivery: Any) -> Settings:
    return Settings.model_validate(
        {
            "topics": [{"name": "clicks", "decoder": "schemaless", "schema": "clicks.avsc"}],
            "mapping": "mappings.yaml",
            "delivery": delivery,
            "kafka": {"commit_interval_seconds": 60, "poll_batch": 500},
            "shutdown": {"drain_timeout_seconds": drain},
        }
    )


def one_event(topic: str, value: bytes | None) -> MapResult:
    """A prepare that maps every record to one VIEW event of guest ``g``."""
    return MapResult((MappedEvent("rule", "VIEW", "g", b"{}"),), None)


def commit_points(tracker: OffsetTracker) -> dict[TopicPartition, int]:
    """The offsets ``to_commit`` offers now, per partition."""
    return {tp: state.offset for tp, state in tracker.to_commit().items()}
