"""Dispatch when things move: oldest first, one owner at a time, per-event progress."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings
from connector.delivery.dispatcher import Dispatcher
from connector.delivery.retry import CircuitBreaker
from connector.mapping import MappedEvent
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import Failure, Work
from connector.run_state import RunState
from connector.settle.deadletter import (
    EVENTS_DELIVERED,
    DeadLetterQueue,
    delivered_events,
    error_headers,
    events_progress,
)
from tests.unit.fake_kafka import commit_points

P0: TopicPartition = ("clicks", 0)
P1: TopicPartition = ("clicks", 1)
P2: TopicPartition = ("clicks", 2)
OK = Answer(Outcome.DELIVERED, 201, "OK")
DOWN = Answer(Outcome.RETRYABLE, 503, "unavailable")
REFUSED = Answer(Outcome.FATAL, 401, "bad credentials")


async def released(dispatcher: Dispatcher, tps: set[TopicPartition]) -> None:
    """What the source's revoke does on the loop: release, then wait for in-flight."""
    dispatcher.release(tps)
    await dispatcher.wait_in_flight(tps)


class Sender:
    """Answers with ``answer(body)``; a body in ``hold`` waits until released."""

    def __init__(self, answer: Callable[[bytes], Answer] = lambda body: OK) -> None:
        self.answer = answer
        self.calls: list[bytes] = []
        self.hold: dict[bytes, asyncio.Event] = {}

    async def send(self, body: bytes) -> Answer:
        self.calls.append(body)
        if (gate := self.hold.get(body)) is not None:
            await gate.wait()
        return self.answer(body)


class DeadLetters:
    def __init__(self) -> None:
        self.failures: list[tuple[Work, Failure]] = []

    def publish_failure(self, work: Work, failure: Failure, on_done: Callable[[], None]) -> None:
        self.failures.append((work, failure))
        on_done()


class Harness:
    def __init__(self, sender: Sender, **delivery: object) -> None:
        self.sender = sender
        self.tracker = OffsetTracker()
        self.epochs = {tp: self.tracker.assign(tp) for tp in (P0, P1, P2)}
        self.offsets = dict.fromkeys(self.epochs, 0)
        self.dlq = DeadLetters()
        self.state = RunState()
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], Awaitable[None]] | None = None

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            if self.on_sleep is not None:
                await self.on_sleep(seconds)
            await asyncio.sleep(0)

        self.dispatcher = Dispatcher(
            sender, self.dlq, self.tracker, DeliverySettings.model_validate(delivery),
            self.state, sleep=sleep,
        )  # fmt: skip

    def work(
        self, tp: TopicPartition, lane: str, *types: str, delivered: frozenset[int] = frozenset()
    ) -> Work:
        offset = self.offsets[tp]
        self.offsets[tp] += 1
        self.tracker.add(tp, offset)
        events = tuple(
            MappedEvent("rule", t, lane, f"{tp[1]}:{offset}:{i}".encode())
            for i, t in enumerate(types or ("VIEW",))
        )
        return Work(tp, offset, self.epochs[tp], None, b"v", None, lane, events, delivered)

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.001)


async def test_oldest_record_first_across_partitions() -> None:
    """A slow lane holds one worker; the other serves records in the order they arrived,
    so a busy guest's older records are not left behind newer ones of other guests."""
    sender = Sender()
    h = Harness(sender, max_in_flight=2)
    slow = h.work(P0, "slow")
    sender.hold[slow.events[0].body] = asyncio.Event()
    works = [slow]
    for _ in range(3):
        works.append(h.work(P1, "busy"))
        works.append(h.work(P2, f"guest-{len(works)}"))
    h.dispatcher.submit(works)
    h.dispatcher.start()
    try:
        await h.until(lambda: len(sender.calls) == 7)
        order = [c for c in sender.calls if c != slow.events[0].body]
        assert order == [
            w.events[0].body for w in works[1:]
        ]  # round-robin: 1:0 2:0 2:1 2:2 1:1 1:2
        sender.hold[slow.events[0].body].set()
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()


async def test_no_next_event_after_revoke_while_the_previous_one_was_in_flight() -> None:
    sender = Sender()
    h = Harness(sender)
    work = h.work(P0, "a", "VIEW", "ADD")
    sender.hold[work.events[0].body] = asyncio.Event()
    h.dispatcher.submit([work])
    h.dispatcher.start()
    try:
        await h.until(lambda: len(sender.calls) == 1)
        release = asyncio.create_task(released(h.dispatcher, {P0}))
        await asyncio.sleep(0.01)
        assert not release.done()  # the request in flight is waited for
        sender.hold[work.events[0].body].set()
        await asyncio.wait_for(release, 1)
        await asyncio.sleep(0.05)
    finally:
        await h.dispatcher.stop()
    assert sender.calls == [work.events[0].body]
    assert commit_points(h.tracker) == {}  # no outcome: the new owner reads it again
    assert h.dlq.failures == []


async def test_no_attempt_after_a_back_off_during_which_the_partition_was_revoked() -> None:
    sender = Sender(lambda body: DOWN)
    h = Harness(sender)

    async def revoke_while_backing_off(_seconds: float) -> None:
        await released(h.dispatcher, {P0})

    h.on_sleep = revoke_while_backing_off
    h.dispatcher.submit([h.work(P0, "a")])
    h.dispatcher.start()
    try:
        await h.until(lambda: bool(h.sleeps))
        await asyncio.sleep(0.05)
    finally:
        await h.dispatcher.stop()
    assert len(sender.calls) == 1
    assert h.tracker.pending == 1


async def test_no_attempt_after_a_circuit_wait_during_which_the_partition_was_revoked() -> None:
    sender = Sender()
    h = Harness(sender)
    now = [0.0]
    h.dispatcher.breaker = CircuitBreaker(1, 0.05, 0.05, clock=lambda: now[0])
    h.dispatcher.breaker.record_failure()  # an outage opened the circuit
    h.dispatcher.submit([h.work(P0, "a")])
    h.dispatcher.start()
    try:
        await h.until(lambda: bool(h.sleeps))  # parked at the gate
        await asyncio.wait_for(released(h.dispatcher, {P0}), 0.01)
        now[0] = 1.0  # the circuit lets one probe through: the revoked record's worker
        await asyncio.sleep(0.01)
        h.dispatcher.submit([h.work(P1, "b")])
        await h.until(lambda: h.tracker.pending == 1)  # the other partition's record went
    finally:
        await h.dispatcher.stop()
    assert sender.calls == [b"1:0:0"]  # and the circuit's probe was not lost with it


async def test_no_attempt_after_a_halt_during_which_the_partition_was_revoked() -> None:
    creds = {"ok": False}
    sender = Sender(lambda body: OK if creds["ok"] else REFUSED)
    h = Harness(sender, auth_probe_seconds=0.01)
    prober = h.work(P1, "p")
    h.dispatcher.submit([prober])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.state.halted_reason is not None)
        h.dispatcher.submit([h.work(P0, "a")])  # waits at the gate while halted
        await h.until(lambda: h.dispatcher.queued == 0)
        await asyncio.wait_for(released(h.dispatcher, {P0}), 0.01)
        creds["ok"] = True
        await h.until(lambda: h.tracker.pending == 1)
        await asyncio.sleep(0.02)
    finally:
        await h.dispatcher.stop()
    assert set(sender.calls) == {prober.events[0].body}


async def test_a_prober_whose_partition_is_revoked_hands_the_probing_over() -> None:
    creds = {"ok": False}
    sender = Sender(lambda body: OK if creds["ok"] else REFUSED)
    h = Harness(sender, auth_probe_seconds=0.01)
    first = h.work(P0, "a")
    h.dispatcher.submit([first])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.state.halted_reason is not None)
        other = h.work(P1, "b")
        h.dispatcher.submit([other])
        await asyncio.wait_for(released(h.dispatcher, {P0}), 0.05)
        await h.until(lambda: other.events[0].body in sender.calls)
        probes_of_first = sender.calls.count(first.events[0].body)
        creds["ok"] = True
        await h.until(lambda: h.tracker.pending == 1)  # only the revoked record is left
        assert sender.calls.count(first.events[0].body) == probes_of_first
    finally:
        await h.dispatcher.stop()
    assert h.state.halted_reason is None


async def test_release_does_not_wait_for_records_parked_in_back_off() -> None:
    sender = Sender(lambda body: DOWN)
    h = Harness(sender, max_in_flight=4)
    forever = asyncio.Event()

    async def long_back_off(_seconds: float) -> None:
        await forever.wait()

    h.on_sleep = long_back_off
    h.dispatcher.submit([h.work(P0, f"g{i}") for i in range(3)])
    h.dispatcher.start()
    try:
        await h.until(lambda: len(h.sleeps) == 3)  # all three parked, none in flight
        await asyncio.wait_for(released(h.dispatcher, {P0}), 0.05)
        forever.set()
        await asyncio.sleep(0.02)
    finally:
        await h.dispatcher.stop()
    assert len(sender.calls) == 3  # woken, none of them tried again


async def test_failure_names_the_events_delivered_before_the_one_that_failed() -> None:
    bad = Answer(Outcome.PERMANENT, 400, "product: required")
    sender = Sender(lambda body: bad if body.endswith(b":1") else OK)
    h = Harness(sender)
    work = h.work(P0, "a", "VIEW", "ADD", "SEARCH")
    h.dispatcher.submit([work])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    [(_, failure)] = h.dlq.failures
    assert failure.event == (1, "ADD")
    assert failure.delivered == ((0, "VIEW"),)
    assert sender.calls == [b"0:0:0", b"0:0:1"]  # SEARCH is not tried after ADD failed

    progress = events_progress(failure)
    assert progress == '{"delivered":[{"index":0,"type":"VIEW"}],"failed":{"index":1,"type":"ADD"}}'
    headers = error_headers(
        "clicks", 0, 0, stage="deliver", exception="X", message="m", events=progress
    )
    assert (EVENTS_DELIVERED, progress.encode()) in headers
    assert delivered_events(headers, work.events) == {0}


async def test_a_record_with_one_event_carries_no_events_progress() -> None:
    sender = Sender(lambda _body: Answer(Outcome.PERMANENT, 400, "page: required"))
    h = Harness(sender)
    h.dispatcher.submit([h.work(P0, "a", "VIEW")])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    [(_, failure)] = h.dlq.failures
    assert failure.event is None and events_progress(failure) is None


async def test_events_delivered_before_are_not_posted_again() -> None:
    sender = Sender()
    h = Harness(sender)
    h.dispatcher.submit([h.work(P0, "a", "VIEW", "ADD", delivered=frozenset({0}))])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    assert sender.calls == [b"0:0:1"]
    assert commit_points(h.tracker) == {P0: 1}


def test_delivered_events_count_only_while_the_event_type_still_matches() -> None:
    events = tuple(MappedEvent("r", t, "g", b"") for t in ("VIEW", "ORDER_CHECKOUT"))
    named = [(0, "VIEW"), (1, "ADD"), (7, "VIEW")]  # 1 was an ADD then, 7 is no more
    header = json.dumps({"delivered": [{"index": i, "type": t} for i, t in named]})
    assert delivered_events([(EVENTS_DELIVERED, header.encode())], events) == {0}
    assert delivered_events([(EVENTS_DELIVERED, b"[not json")], events) == frozenset()
    assert delivered_events([(EVENTS_DELIVERED, b'{"delivered": 3}')], events) == frozenset()
    assert delivered_events(None, events) == frozenset()


async def test_a_released_partition_assigned_again_is_served_under_its_new_epoch() -> None:
    sender = Sender()
    h = Harness(sender)
    h.dispatcher.start()
    try:
        await released(h.dispatcher, {P0})
        h.tracker.revoke(P0)
        h.epochs[P0] = h.tracker.assign(P0)
        h.dispatcher.submit([h.work(P0, "a")])
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    assert sender.calls == [b"0:0:0"]
    assert commit_points(h.tracker) == {P0: 1}


def test_the_dead_letter_of_a_delivery_failure_carries_the_events_progress() -> None:
    published: list[dict[str, object]] = []

    class Producer:
        def produce(self, topic: str, **kwargs: object) -> None:
            published.append(kwargs)

    events = tuple(MappedEvent("r", t, "g", b"") for t in ("VIEW", "ADD"))
    work = Work(P0, 4, 1, None, b"v", None, "g", events)
    failure = Failure("refused", "r", 400, 1, event=(1, "ADD"), delivered=((0, "VIEW"),))
    dlq = DeadLetterQueue(Producer(), "dlq", RunState())  # type: ignore[arg-type]
    dlq.publish_failure(work, failure, lambda: None)

    headers = published[0]["headers"]
    assert isinstance(headers, list)
    assert delivered_events(headers, events) == {0}
