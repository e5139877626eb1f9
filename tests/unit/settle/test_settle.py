"""Settle: the outcome of each consumed record, and how ``take`` applies it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from connector.delivery.retry import Backoff
from connector.errors import ConfigError, DecodeError, MappingError, TransientError
from connector.mapping import MappedEvent, MapResult, UnknownPointOfSale
from connector.offsets.tracker import OffsetTracker
from connector.records import ConsumedRecord, Failure, Headers, Work, lane_rule
from connector.run_state import RunState
from connector.settle.deadletter import REPLAY_ATTEMPTS, DeadLetterQueue, Origin, replayed_origin
from connector.settle.stage import DeadLetter, Prepare, Settle, Skipped
from tests.unit.fake_kafka import FakeDeadLetters

TP = ("clicks", 0)


def mapped(guest: str) -> MapResult:
    return MapResult((MappedEvent("view", "VIEW", guest, b"{}"),), None)


class Rig:
    def __init__(self, prepare: Prepare, wait: Callable[[float], bool] = lambda _d: True) -> None:
        self.tracker = OffsetTracker()
        self.epoch = self.tracker.assign(TP)
        self.state = RunState()
        self.dlq = FakeDeadLetters()
        self.skipped: list[str] = []
        dlq: Any = self.dlq
        self.settle = Settle(
            prepare, lane_rule("key"), self.tracker, dlq, self.state, wait,
            backoff=Backoff(1.0, 4.0, rand=lambda: 1.0), on_skipped=self.skipped.append,
        )  # fmt: skip

    def outcome(self, offset: int = 0) -> object:
        return self.settle.outcome(
            ConsumedRecord(TP, offset, self.epoch, b"k", b"v", None, None, "clicks")
        )

    def take(self, offset: int = 0) -> Work | None:
        self.tracker.add(TP, offset)
        return self.settle.take(
            ConsumedRecord(TP, offset, self.epoch, b"k", b"v", None, None, "clicks")
        )


def read_as(
    topic: str,
    tp: tuple[str, int],
    offset: int,
    epoch: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
) -> ConsumedRecord:
    """A record read at tp/offset (no timestamp), mapped as ``topic``'s."""
    return ConsumedRecord(tp, offset, epoch, key, value, headers, None, topic)


def test_a_record_with_events_is_work_on_its_guest_lane() -> None:
    rig = Rig(lambda _t, _v: mapped("guest-7"))
    work = rig.take(5)
    assert isinstance(work, Work)
    assert (work.tp, work.offset, work.epoch, work.lane) == (TP, 5, rig.epoch, "guest-7")
    assert rig.tracker.pending == 1  # finished by dispatch, not here


@pytest.mark.parametrize(("skipped_by", "rule"), [("bots", "bots"), (None, "no-match")])
def test_a_skipped_record_is_finished_at_once(skipped_by: str | None, rule: str) -> None:
    rig = Rig(lambda _t, _v: MapResult((), skipped_by))
    assert rig.outcome() == Skipped(rule)
    assert rig.take() is None
    assert rig.tracker.pending == 0
    assert rig.skipped == [rule]


def test_a_record_that_fails_to_map_is_a_dead_letter_with_its_failure() -> None:
    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        raise MappingError("field 'page' is missing", rule="views")

    rig = Rig(prepare)
    failure = Failure("field 'page' is missing", "views", None, None, "MappingError", "map")
    assert rig.outcome() == DeadLetter(failure)
    assert rig.take(3) is None
    assert rig.dlq.failures == [(TP, 3, failure)]
    assert rig.tracker.pending == 0  # the fake acknowledges the write at once


def test_a_point_of_sale_the_tenant_lacks_is_a_dead_letter_and_is_reported() -> None:
    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        raise UnknownPointOfSale(
            "'shop.nl' is not in cdp.points_of_sale", rule="v", value="shop.nl"
        )

    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    dlq: Any = FakeDeadLetters()
    reported: list[str] = []
    settle = Settle(prepare, lane_rule("key"), tracker, dlq, RunState(), lambda _d: True,
                    on_unknown_pos=reported.append)  # fmt: skip
    tracker.add(TP, 4)
    assert settle.take(read_as("clicks", TP, 4, epoch, b"k", b"v", None)) is None
    [(_, _, failure)] = dlq.failures
    assert (failure.rule, failure.stage, failure.exception) == ("v", "map", "UnknownPointOfSale")
    assert reported == ["shop.nl"]


def test_a_transient_error_is_waited_out_through_backoff() -> None:
    answers: list[Any] = [TransientError("registry down"), TransientError("registry down")]
    waits: list[float] = []

    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        if answers:
            raise answers.pop(0)
        return mapped("g")

    def wait(delay: float) -> bool:
        waits.append(delay)
        assert rig.state.degraded_reason == "registry down"  # readiness and metrics see it
        return False

    rig = Rig(prepare, wait)
    assert isinstance(rig.outcome(), Work)
    assert waits == [1.0, 2.0]  # Backoff(1, 4): doubling, jitter pinned to its ceiling
    assert rig.state.degraded_reason is None


def test_a_reader_that_stops_while_waiting_gets_the_error() -> None:
    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        raise TransientError("registry down")

    rig = Rig(prepare, wait=lambda _d: True)
    with pytest.raises(TransientError):
        rig.take()
    assert rig.tracker.pending == 1  # no outcome: never committed


def test_an_error_that_is_neither_a_record_nor_retriable_aborts() -> None:
    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        raise ConfigError("no schema")

    with pytest.raises(ConfigError):
        Rig(prepare).outcome()


def test_a_tombstone_is_a_decode_error() -> None:
    from connector.decode.decoders import SchemalessAvroDecoder
    from connector.decode.schemas import parse_schema_text

    decoder = SchemalessAvroDecoder(parse_schema_text('{"type": "string"}'))
    with pytest.raises(DecodeError, match="tombstone"):
        decoder.decode(None)


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.produced.append(kwargs)
        kwargs["on_delivery"](None, None)


def _dead_letter(
    origin_of: Any, tp: tuple[str, int], offset: int, headers: list[tuple[str, Any]]
) -> dict[str, Any]:
    """Dead-letter the record read at tp/offset; the headers written."""
    producer: Any = FakeProducer()
    done: list[bool] = []
    dlq = DeadLetterQueue(producer, "dlq", RunState(), origin_of=origin_of)
    failure = Failure("HTTP 400", "views", 400, 1)
    record = ConsumedRecord(tp, offset, 1, b"k", b"v", headers, None, tp[0])
    dlq.publish_failure(record, failure, lambda: done.append(True))
    assert done == [True]
    return dict(producer.produced[0]["headers"])


def test_run_and_replay_write_dead_letters_through_one_path() -> None:
    run = _dead_letter(Origin.read_at, ("clicks", 2), 9, [("trace", b"t")])
    assert (run["__connect.errors.topic"], run["__connect.errors.offset"]) == (b"clicks", b"9")
    assert REPLAY_ATTEMPTS not in run
    replayed = _dead_letter(replayed_origin, ("dlq", 0), 0, list(run.items()))
    # The first origin is kept, not the dead-letter topic's coordinates.
    assert (replayed["__connect.errors.topic"], replayed["__connect.errors.offset"]) == (
        b"clicks",
        b"9",
    )
    assert replayed[REPLAY_ATTEMPTS] == b"1"
    assert replayed["trace"] == b"t"


def test_a_dead_letter_write_refused_at_once_stops_without_an_outcome() -> None:
    class RefusingProducer:
        def produce(self, topic: str, **kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC))

    state = RunState()
    producer: Any = RefusingProducer()
    done: list[bool] = []
    dlq = DeadLetterQueue(producer, "dlq", state)
    failure = Failure("bad", None, None, None, "DecodeError", "decode")
    record = ConsumedRecord(TP, 1, 1, None, b"v", None, None, TP[0])
    dlq.publish_failure(record, failure, lambda: done.append(True))
    assert state.fatal_exit is not None
    assert "dead-letter write" in state.fatal_exit
    assert done == []  # no outcome: the offset is never committed


def test_a_record_is_prepared_as_the_topic_it_is_mapped_as_and_becomes_work_as_read() -> None:
    # replay-dlq reads at the dead-letter topic's coordinates, maps as the origin topic.
    prepared: list[tuple[str, bytes | None]] = []

    def prepare(topic: str, value: bytes | None) -> MapResult:
        prepared.append((topic, value))
        return MapResult((*mapped("guest-1").events, *mapped("guest-2").events), None)

    rig = Rig(prepare)
    dlq_tp = ("cdp.dlq", 4)
    epoch = rig.tracker.assign(dlq_tp)
    rig.tracker.add(dlq_tp, 8)
    headers: list[tuple[str, str | bytes | None]] = [("trace", b"t")]
    work = rig.settle.take(
        ConsumedRecord(dlq_tp, 8, epoch, b"key", b"value", headers, None, "clicks")
    )
    assert prepared == [("clicks", b"value")]
    events = (*mapped("guest-1").events, *mapped("guest-2").events)
    # The lane is the first event's guest (ordering: key).
    assert work == Work(dlq_tp, 8, epoch, b"key", b"value", headers, "guest-1", events)


@pytest.mark.parametrize(
    ("ordering", "lane"),
    [("key", "guest-7"), ("partition", TP), ("none", (TP, 5))],
)
def test_work_is_on_the_lane_its_ordering_asks_for(ordering: str, lane: object) -> None:
    tracker = OffsetTracker()
    dlq: Any = FakeDeadLetters()
    settle = Settle(lambda _t, _v: mapped("guest-7"), lane_rule(ordering), tracker, dlq, RunState(),
                    lambda _d: True)  # fmt: skip
    work = settle.outcome(read_as("clicks", TP, 5, 1, None, b"v", None))
    assert isinstance(work, Work)
    assert work.lane == lane


def test_a_skip_needs_no_listener() -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    tracker.add(TP, 0)
    dlq: Any = FakeDeadLetters()
    settle = Settle(lambda _t, _v: MapResult((), "bots"), "key", tracker, dlq, RunState(),
                    lambda _d: True)  # fmt: skip
    assert settle.take(read_as("clicks", TP, 0, epoch, None, b"v", None)) is None
    assert tracker.pending == 0


WHY = (
    "__connect.errors.topic", "__connect.errors.partition", "__connect.errors.offset",
    "__connect.errors.stage", "__connect.errors.class.name",
    "__connect.errors.exception.message", "cdp.errors.stage", "cdp.errors.rule",
)  # fmt: skip


class HeldProducer:
    """Keeps each write unacknowledged until ``acknowledge``."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, dict[str, Any]]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.produced.append((topic, kwargs))

    def acknowledge(self) -> None:
        for _topic, kwargs in self.produced:
            kwargs["on_delivery"](None, None)

    def poll(self, timeout: float = 0.0) -> int:
        return 0


def test_a_dead_letter_is_the_record_as_read_with_why_and_is_finished_when_written() -> None:
    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        raise MappingError("field 'page' is missing", rule="views")

    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    tracker.add(TP, 6)
    producer = HeldProducer()
    producer_: Any = producer
    dlq = DeadLetterQueue(producer_, "cdp.dlq", RunState())
    settle = Settle(prepare, lane_rule("key"), tracker, dlq, RunState(), lambda _d: True)
    headers: list[tuple[str, str | bytes | None]] = [("trace", b"t")]
    assert settle.take(read_as("clicks", TP, 6, epoch, b"key", b"value", headers)) is None
    [(topic, written)] = producer.produced
    assert (topic, written["key"], written["value"]) == ("cdp.dlq", b"key", b"value")
    written_headers = dict(written["headers"])
    assert written_headers["trace"] == b"t"  # the record's own headers travel with it
    assert {name: written_headers[name] for name in WHY} == {
        "__connect.errors.topic": b"clicks",
        "__connect.errors.partition": b"0",
        "__connect.errors.offset": b"6",
        "__connect.errors.stage": b"TRANSFORMATION",
        "__connect.errors.class.name": b"MappingError",
        "__connect.errors.exception.message": b"field 'page' is missing",
        "cdp.errors.stage": b"map",
        "cdp.errors.rule": b"views",
    }
    assert "cdp.errors.http.status" not in written_headers  # never sent
    assert "cdp.errors.attempts" not in written_headers
    assert tracker.pending == 1  # an outcome only once the write is acknowledged
    producer.acknowledge()
    assert tracker.pending == 0
    assert {tp: s.offset for tp, s in tracker.to_commit().items()} == {TP: 7}


def test_each_retry_of_a_transient_error_is_logged_with_its_delay_and_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[Any] = [TransientError("registry down")] * 4
    waits: list[float] = []

    def prepare(_topic: str, _value: bytes | None) -> MapResult:
        if answers:
            raise answers.pop(0)
        return mapped("g")

    rig = Rig(prepare, lambda delay: bool(waits.append(delay)))
    with caplog.at_level(logging.WARNING, "connector.settle.stage"):
        assert isinstance(
            rig.settle.outcome(read_as("c", ("clicks", 2), 11, 1, None, b"v", None)),
            Work,
        )
    assert waits == [1.0, 2.0, 4.0, 4.0]  # Backoff(1, 4): attempts counted, capped at 4
    assert [r.getMessage() for r in caplog.records] == [
        "retrying in 1.0s: registry down",
        "retrying in 2.0s: registry down",
        "retrying in 4.0s: registry down",
        "retrying in 4.0s: registry down",
    ]
    where = [tuple(vars(r)[k] for k in ("topic", "partition", "offset")) for r in caplog.records]
    assert where == [("clicks", 2, 11)] * 4  # the JSON log's record fields
    assert rig.state.degraded_reason is None
