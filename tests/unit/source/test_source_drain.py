"""Revoke and shutdown against a dispatcher on a real event loop: they wait only for
requests in flight, once, within the drain timeout, and a fence ends the wait."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings
from connector.delivery.dispatcher import Dispatcher
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import Failure, Work
from connector.run_state import RunState
from connector.source.handoff import Handoff
from tests.unit.source.test_source import P0, P1, Rig


class Loop:
    """An event loop on its own thread, as the pipeline runs dispatch beside the source."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], Any]) -> None:
        done = threading.Event()
        self.loop.call_soon_threadsafe(lambda: (fn(), done.set()))
        done.wait(5)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


class StuckDispatcher:
    """Requests that never answer, not even when cancelled (the worst case)."""

    def __init__(self) -> None:
        self.released: list[set[TopicPartition]] = []
        self.stopped = False

    def submit(self, works: list[Work]) -> None:
        pass

    def release(self, tps: set[TopicPartition]) -> None:
        self.released.append(set(tps))

    def in_flight(self, tps: set[TopicPartition]) -> int:
        return len(tps)

    async def wait_in_flight(self, tps: set[TopicPartition]) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


class SlowSender:
    """Every request takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    async def send(self, body: bytes) -> Answer:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        return Answer(Outcome.DELIVERED, 201, "OK")


class NoDeadLetters:
    def publish_failure(self, work: Work, failure: Failure, on_done: Callable[[], None]) -> None:
        raise AssertionError("nothing fails here")


def timed(fn: Callable[[], None]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["revoke", "shutdown"])
def test_waits_only_for_the_requests_in_flight_not_for_held_records(loop: Loop, how: str) -> None:
    sender = SlowSender(0.2)
    made: list[Dispatcher] = []

    def handoff(tracker: OffsetTracker, state: RunState) -> Handoff:
        delivery = DeliverySettings(max_in_flight=1)
        made.append(Dispatcher(sender, NoDeadLetters(), tracker, delivery, state))
        return Handoff(made[0], loop.loop)

    rig = Rig(handoff=handoff, drain=3.0)
    loop.call(made[0].start)
    rig.kafka.assign(P0)
    rig.read(P0, range(5))  # one guest: one in flight, four waiting behind it
    deadline = time.monotonic() + 2
    while sender.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = timed(lambda: rig.kafka.revoke(P0) if how == "revoke" else rig.source.shutdown())
    assert elapsed < 0.8  # the one request in flight (0.2 s), not five (1 s), nor the 3 s drain
    time.sleep(0.3)
    assert sender.calls == 1  # the held records were never posted
    assert rig.kafka.commits == [({P0: 1}, False)]  # the one that answered
    asyncio.run_coroutine_threadsafe(made[0].stop(), loop.loop).result(5)


def test_shutdown_waits_the_drain_once_when_requests_never_finish(loop: Loop) -> None:
    stuck = StuckDispatcher()
    rig = Rig(handoff=lambda _t, _s: Handoff(stuck, loop.loop), drain=0.5)  # type: ignore[arg-type]
    rig.kafka.assign(P0, P1)
    rig.read(P0, range(3))
    rig.finish(P0, 0)
    elapsed = timed(rig.source.shutdown)  # close() revokes P0 and P1 once more
    assert 0.45 <= elapsed < 0.5 + 0.4  # twice the drain would be 1 s
    assert stuck.released[0] == {P0, P1}  # no new attempt from the start of the drain
    assert stuck.stopped  # the requests still open are cancelled before the commit
    assert rig.kafka.commits == [({P0: 1}, False)]
    assert rig.kafka.closed


def test_a_fence_during_the_drain_ends_it_at_once(loop: Loop) -> None:
    stuck = StuckDispatcher()
    rig = Rig(handoff=lambda _t, _s: Handoff(stuck, loop.loop), drain=5.0)  # type: ignore[arg-type]
    rig.kafka.assign(P0)
    rig.read(P0, range(3))
    rig.finish(P0, 0)

    def fenced_meanwhile() -> None:
        rig.kafka.fatal = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True)

    rig.kafka.on_consume = fenced_meanwhile  # the replacement joins while this one drains
    elapsed = timed(rig.source.shutdown)
    assert elapsed < 1.0  # not the 5 s drain: the consumer is polled while it waits
    assert rig.state.fatal_exit is not None
    assert "fenced" in rig.state.fatal_exit
    assert stuck.stopped
    assert rig.kafka.commits == []


def test_lost_partitions_stop_posting_before_anything_is_waited_for(loop: Loop) -> None:
    stuck = StuckDispatcher()
    rig = Rig(handoff=lambda _t, _s: Handoff(stuck, loop.loop))  # type: ignore[arg-type]
    rig.kafka.assign(P0, P1)
    elapsed = timed(lambda: rig.kafka.lose(P0))
    assert stuck.released == [{P0}]
    assert elapsed < 1.5
    assert rig.tracker.epoch(P0) is None
