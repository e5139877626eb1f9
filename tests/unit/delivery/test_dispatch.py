"""The dispatcher: order per lane, concurrency across lanes, retries, halts, dead letters."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable

import pytest

from connector.cdp.client import Answer, Outcome
from connector.config import CircuitSettings, DeliverySettings, RetrySettings
from connector.delivery.dispatcher import Dispatcher
from connector.mapping import MappedEvent
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import Failure, Work, lane_rule
from connector.run_state import RunState
from tests.unit.fake_kafka import commit_points

TP = ("clicks", 0)
OK = Answer(Outcome.DELIVERED, 201, "OK")


async def released(dispatcher: Dispatcher, tps: set[TopicPartition]) -> None:
    """What the source's revoke does on the loop: release, then wait for in-flight."""
    dispatcher.release(tps)
    await dispatcher.wait_in_flight(tps)


class FakeSender:
    """Answers from a script (a function of the body and the attempt number)."""

    def __init__(self, script: Callable[[bytes, int], Answer], latency: float = 0.0) -> None:
        self._script = script
        self._latency = latency
        self._rng = random.Random(39)
        self.calls: list[bytes] = []
        self.attempts: dict[bytes, int] = defaultdict(int)
        self.in_flight = 0
        self.max_in_flight = 0

    async def send(self, body: bytes) -> Answer:
        self.calls.append(body)
        self.attempts[body] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._latency:
                await asyncio.sleep(self._rng.uniform(0, self._latency))
            return self._script(body, self.attempts[body])
        finally:
            self.in_flight -= 1


class FakeDeadLetters:
    def __init__(self) -> None:
        self.failures: list[tuple[int, Failure]] = []

    def publish_failure(self, work: Work, failure: Failure, on_done: Callable[[], None]) -> None:
        self.failures.append((work.offset, failure))
        on_done()


class Harness:
    def __init__(self, sender: FakeSender, **delivery: object) -> None:
        self.tracker = OffsetTracker()
        self.epoch = self.tracker.assign(TP)
        self.dlq = FakeDeadLetters()
        self.state = RunState()
        self.sleeps: list[float] = []
        settings = DeliverySettings.model_validate(delivery)

        async def fast_sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            await asyncio.sleep(0)

        self.dispatcher = Dispatcher(
            sender, self.dlq, self.tracker, settings, self.state, sleep=fast_sleep
        )
        self.next_offset = 0

    def submit(self, guest_keys: list[str], events_per_record: int = 1) -> None:
        works = []
        for key in guest_keys:
            offset = self.next_offset
            self.next_offset += 1
            self.tracker.add(TP, offset)
            events = tuple(
                MappedEvent("rule", "VIEW", key, f"{key}:{offset}:{i}".encode())
                for i in range(events_per_record)
            )
            works.append(Work(TP, offset, self.epoch, None, b"v", None, key, events))
        self.dispatcher.submit(works)

    async def run_until_finished(self, timeout: float = 5.0) -> None:
        self.dispatcher.start()
        try:
            async with asyncio.timeout(timeout):
                while self.tracker.pending:
                    await asyncio.sleep(0.001)
        finally:
            await self.dispatcher.stop()


async def test_same_key_is_posted_in_offset_order_and_keys_run_concurrently() -> None:
    sender = FakeSender(lambda body, n: OK, latency=0.005)
    h = Harness(sender, max_in_flight=64)
    rng = random.Random(98)
    keys = [f"guest-{rng.randrange(20)}" for _ in range(400)]
    h.submit(keys, events_per_record=2)

    await h.run_until_finished()

    per_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for body in sender.calls:
        key, offset, index = body.decode().split(":")
        per_key[key].append((int(offset), int(index)))
    for sequence in per_key.values():
        assert sequence == sorted(sequence)
    assert sender.max_in_flight > 5
    assert sender.max_in_flight <= 64
    assert commit_points(h.tracker) == {TP: 400}


async def test_permanent_answer_dead_letters_the_record_with_the_reason() -> None:
    bad = Answer(Outcome.PERMANENT, 400, "email: invalid")
    sender = FakeSender(lambda body, n: bad if body.startswith(b"b:") else OK)
    h = Harness(sender)
    h.submit(["a", "b", "c"])

    await h.run_until_finished()

    assert [(off, f.status, f.reason) for off, f in h.dlq.failures] == [(1, 400, "email: invalid")]
    assert commit_points(h.tracker) == {TP: 3}


async def test_retryable_answers_are_retried_with_retry_after_honoured() -> None:
    throttled = Answer(Outcome.RETRYABLE, 429, "slow down", retry_after=7.0)
    sender = FakeSender(lambda body, n: throttled if n < 3 else OK)
    h = Harness(sender)
    h.submit(["a"])

    await h.run_until_finished()

    assert sender.attempts[b"a:0:0"] == 3
    assert [s for s in h.sleeps if s >= 7.0] == [7.0, 7.0]
    assert h.dlq.failures == []


async def test_retries_exhausted_dead_letters_with_attempt_count() -> None:
    down = Answer(Outcome.RETRYABLE, 503, "unavailable")
    sender = FakeSender(lambda body, n: down if body.startswith(b"x:") else OK)
    h = Harness(sender, retry=RetrySettings(max_attempts=4))
    h.submit(["x", "y", "y", "y"])  # successes for y keep the circuit closed

    await h.run_until_finished()

    [(offset, failure)] = h.dlq.failures
    assert offset == 0
    assert failure.attempts == 4
    assert failure.exception == "RetriesExhausted"


async def test_outage_opens_circuit_and_spends_no_retries() -> None:
    outage = {"on": True}
    down = Answer(Outcome.RETRYABLE, 503, "outage")
    sender = FakeSender(lambda body, n: down if outage["on"] else OK)
    h = Harness(
        sender,
        max_in_flight=8,
        retry=RetrySettings(max_attempts=2),
        circuit=CircuitSettings(failure_threshold=3, open_seconds=0.01, max_open_seconds=0.02),
    )
    h.submit([f"g{i}" for i in range(30)])
    h.dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while not h.state.circuit_open:
                await asyncio.sleep(0.001)
            for _ in range(200):  # the outage lasts a while: many probes fail
                await asyncio.sleep(0.001)
            outage["on"] = False
            while h.tracker.pending:
                await asyncio.sleep(0.001)
    finally:
        await h.dispatcher.stop()

    assert h.dlq.failures == []
    assert commit_points(h.tracker) == {TP: 30}
    assert not h.state.circuit_open


async def test_401_halts_everything_without_dead_letters_and_recovers() -> None:
    creds = {"ok": False}
    refused = Answer(Outcome.FATAL, 401, "bad credentials")
    sender = FakeSender(lambda body, n: OK if creds["ok"] else refused)
    h = Harness(sender, max_in_flight=4, auth_probe_seconds=0.01)
    h.submit([f"g{i}" for i in range(10)])
    h.dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while h.state.halted_reason is None:
                await asyncio.sleep(0.001)
            assert not h.state.readiness()[0]
            calls_while_halted = len(sender.calls)
            await asyncio.sleep(0.05)
            # Only the one prober, with its own event, keeps trying while halted.
            assert len(set(sender.calls[calls_while_halted:])) == 1
            assert commit_points(h.tracker) == {}
            creds["ok"] = True
            while h.tracker.pending:
                await asyncio.sleep(0.001)
    finally:
        await h.dispatcher.stop()

    assert h.dlq.failures == []
    assert h.state.halted_reason is None
    assert commit_points(h.tracker) == {TP: 10}


async def test_released_partition_records_are_not_posted() -> None:
    gate = asyncio.Event()
    sending = asyncio.Event()
    posted: list[bytes] = []

    async def blocked_send(body: bytes) -> Answer:
        posted.append(body)
        sending.set()
        await gate.wait()
        return OK

    sender = FakeSender(lambda body, n: OK)
    sender.send = blocked_send  # type: ignore[method-assign]
    h = Harness(sender, max_in_flight=1)
    h.submit(["a", "a", "a"])
    h.dispatcher.start()
    try:
        await asyncio.wait_for(sending.wait(), 1)  # first record in flight, two queued
        release = asyncio.create_task(released(h.dispatcher, {TP}))
        async with asyncio.timeout(1):  # until it dropped the queued two
            while h.dispatcher.queued:
                await asyncio.sleep(0.001)
        assert not release.done()  # waits for the in-flight one
        gate.set()
        await asyncio.wait_for(release, 1)
        assert h.dispatcher.queued == 0
        assert commit_points(h.tracker) == {TP: 1}
        assert posted == [b"a:0:0"]  # the two dropped ones never reached the CDP
    finally:
        await h.dispatcher.stop()


def test_lanes_follow_the_ordering_mode() -> None:
    assert lane_rule("key")(TP, 5, "guest-1") == lane_rule("key")(("clicks", 1), 9, "guest-1")
    assert lane_rule("partition")(TP, 5, "a") == lane_rule("partition")(TP, 6, "b")
    assert lane_rule("partition")(TP, 5, "a") != lane_rule("partition")(("clicks", 1), 5, "a")
    assert lane_rule("none")(TP, 5, "a") != lane_rule("none")(TP, 6, "a")


async def test_an_unexpected_error_stops_the_connector_instead_of_losing_a_worker() -> None:
    def broken(body: bytes, attempt: int) -> Answer:
        raise RuntimeError("bug")

    h = Harness(FakeSender(broken))
    h.submit(["a"])
    h.dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while h.state.fatal_exit is None:
                await asyncio.sleep(0.001)
    finally:
        await h.dispatcher.stop()
    assert "RuntimeError('bug')" in h.state.fatal_exit
    assert commit_points(h.tracker) == {}


async def test_an_outage_warns_once_when_the_circuit_opens_and_once_when_it_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = {"on": True}
    down = Answer(Outcome.RETRYABLE, 503, "outage")
    sender = FakeSender(lambda body, n: down if outage["on"] else OK)
    h = Harness(
        sender,
        max_in_flight=4,
        retry=RetrySettings(max_attempts=100, initial_backoff_seconds=0.001),
        circuit=CircuitSettings(failure_threshold=3, open_seconds=0.01, max_open_seconds=0.02),
    )
    h.submit([f"g{i}" for i in range(10)])
    h.dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while not h.state.circuit_open:
                await asyncio.sleep(0.001)
            while len(sender.calls) < 20:  # probes keep failing for a while
                await asyncio.sleep(0.001)
            outage["on"] = False
            while h.tracker.pending:
                await asyncio.sleep(0.001)
    finally:
        await h.dispatcher.stop()
    circuit = [r.getMessage() for r in caplog.records if "CDP circuit" in r.getMessage()]
    assert len(circuit) == 2, circuit
    assert circuit[0].startswith(
        "CDP circuit opened: 3 consecutive retryable failures, the last HTTP 503: outage"
    )
    assert circuit[1].startswith("CDP circuit closed after ")
    assert all(r.levelname == "WARNING" for r in caplog.records if "CDP circuit" in r.message)
