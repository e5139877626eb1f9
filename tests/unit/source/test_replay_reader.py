"""replay-dlq's reader with a fake consumer: of a dead letter whose record had several
events, only those its headers do not name delivered are posted again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings
from connector.delivery.dispatcher import Dispatcher
from connector.kafka.commits import Committer, commit_metadata
from connector.mapping import MappedEvent, MapResult
from connector.offsets.metadata import encode
from connector.offsets.tracker import OffsetTracker
from connector.records import Failure, Work, lane_rule
from connector.run_state import RunState
from connector.settle.deadletter import EVENTS_DELIVERED, error_headers
from connector.settle.stage import Settle
from connector.source.replay_reader import DlqReader, ReplayOptions
from tests.unit.fake_kafka import FakeConsumer, FakeDeadLetters, FakeMessage

DLQ = "clicks.dlq"


def view_and_add(topic: str, value: bytes | None) -> MapResult:
    return MapResult(
        (MappedEvent("r", "VIEW", "g", b"view"), MappedEvent("r", "ADD", "g", b"add")), None
    )


class Sender:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def send(self, body: bytes) -> Answer:
        self.bodies.append(body)
        return Answer(Outcome.DELIVERED, 201, "OK")


class NoDeadLetters:
    def publish_failure(self, work: Work, failure: Failure, on_done: Any) -> None:
        raise AssertionError("nothing fails here")


def dead_letter(offset: int, progress: str | None) -> FakeMessage:
    headers = error_headers("clicks", 0, 7, stage="deliver", exception="DeliveryRejected",
                            message="400", events=progress)  # fmt: skip
    return FakeMessage(DLQ, 0, offset, headers=headers)


async def test_replay_posts_only_the_events_the_dead_letter_does_not_name_delivered() -> None:
    tracker, state = OffsetTracker(), RunState()
    dlq: Any = FakeDeadLetters()
    settle = Settle(view_and_add, lane_rule("key"), tracker, dlq, state, lambda _d: True)
    consumer: Any = FakeConsumer({})
    reader = DlqReader(consumer, DLQ, "g.dlq-replay", settle, tracker,
                       Committer(tracker, state, "test"), dlq, state, ReplayOptions())  # fmt: skip
    reader.ends = {0: 10}
    reader.epochs = {0: tracker.assign((DLQ, 0))}
    progress = '{"delivered":[{"index":0,"type":"VIEW"}],"failed":{"index":1,"type":"ADD"}}'
    works = [reader._read(dead_letter(0, progress)), reader._read(dead_letter(1, None))]
    assert [w.delivered for w in works if w is not None] == [frozenset({0}), frozenset()]
    assert (EVENTS_DELIVERED, progress.encode()) in dead_letter(0, progress).headers()

    sender = Sender()
    dispatcher = Dispatcher(sender, NoDeadLetters(), tracker, DeliverySettings(), state)
    dispatcher.submit([w for w in works if w is not None])
    dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while tracker.pending:
                await asyncio.sleep(0.01)
    finally:
        await dispatcher.stop()
    assert sender.bodies == [b"add", b"view", b"add"]  # the first VIEW is not posted again


class DlqConsumer(FakeConsumer):
    """The dead-letter topic with one partition of ten records."""

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return (0, 10)

    def assign(self, partitions: Any) -> None:  # type: ignore[override]
        self.started = partitions


def test_a_replay_run_again_does_not_post_what_the_earlier_one_finished() -> None:
    tracker, state = OffsetTracker(), RunState()
    dlq: Any = FakeDeadLetters()
    settle = Settle(view_and_add, lane_rule("key"), tracker, dlq, state, lambda _d: True)
    consumer: Any = DlqConsumer({})
    prefix = commit_metadata("earlier replay")
    consumer.group[(DLQ, 0)] = (2, encode(prefix, 2, [3, 4]).text)  # what the earlier run committed
    reader = DlqReader(consumer, DLQ, "g.dlq-replay", settle, tracker,
                       Committer(tracker, state, prefix), dlq, state, ReplayOptions())  # fmt: skip
    reader.assign()
    works = [reader._read(dead_letter(offset, None)) for offset in range(2, 6)]
    assert [w.offset for w in works if w is not None] == [2, 5]
    assert reader.finished_before == 2


class MovingCoordinator(DlqConsumer):
    """Answers the first committed() with NOT_COORDINATOR, as a fresh group's may."""

    lookups = 0

    def committed(self, partitions: list[KafkaTP], timeout: float = -1) -> list[KafkaTP]:
        self.lookups += 1
        if self.lookups == 1:
            raise KafkaException(KafkaError(KafkaError.NOT_COORDINATOR))
        return super().committed(partitions, timeout)


def test_replay_asks_a_moving_coordinator_again_for_the_committed_offsets() -> None:
    tracker, state = OffsetTracker(), RunState()
    dlq: Any = FakeDeadLetters()
    settle = Settle(view_and_add, lane_rule("key"), tracker, dlq, state, lambda _d: True)
    consumer = MovingCoordinator({})
    prefix = commit_metadata("earlier replay")
    consumer.group[(DLQ, 0)] = (2, encode(prefix, 2, []).text)
    reader = DlqReader(consumer, DLQ, "g.dlq-replay", settle, tracker,  # type: ignore[arg-type]
                       Committer(tracker, state, prefix), dlq, state, ReplayOptions())  # fmt: skip
    reader.assign()
    assert consumer.lookups == 2
    assert [p.offset for p in consumer.started] == [2]
