"""The steady flow from the consumer thread to the dispatcher (``connector.delivery.flow``):
small hand-overs, paced by what the workers take, and what a finished record still holds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings, Settings
from connector.delivery.dispatcher import Dispatcher
from connector.delivery.flow import Flow
from connector.delivery.lanes import Lanes
from connector.kafka.commits import Committer, commit_metadata
from connector.mapping import MappedEvent
from connector.offsets.tracker import OffsetTracker
from connector.records import Work, lane_rule
from connector.run_state import RunState
from connector.settle.stage import Settle
from connector.source.handoff import Handoff
from connector.source.kafka_source import ROOM_WAIT, KafkaSource
from connector.source.settings import SourceSettings
from tests.unit.fake_kafka import FakeConsumer, FakeDeadLetters, FakeHandoff, FakeMessage, one_event

TP = ("clicks", 0)
OK = Answer(Outcome.DELIVERED, 201, "OK")


def work(offset: int, lane: str, epoch: int = 1) -> Work:
    body = f"{lane}:{offset}".encode()
    return Work(TP, offset, epoch, None, b"v", None, lane, (MappedEvent("r", "VIEW", lane, body),))


# -- the hand-over batch -------------------------------------------------------------


class SourceRig:
    """A source with the shipped defaults (no ``kafka.poll_batch`` set) and fakes around it."""

    def __init__(self) -> None:
        self.settings = Settings.model_validate(
            {
                "topics": [{"name": "clicks", "decoder": "schemaless", "schema": "c.avsc"}],
                "mapping": "mappings.yaml",
                "kafka": {"commit_interval_seconds": 60},
            }
        )
        self.tracker = OffsetTracker()
        self.state = RunState()
        self.handoff = FakeHandoff()
        self.timeouts: list[float] = []
        dlq: Any = FakeDeadLetters()
        settle = Settle(one_event, lane_rule("key"), self.tracker, dlq, self.state, lambda _d: True)
        consumers: list[FakeConsumer] = []

        def make(own: dict[str, Any]) -> Any:
            consumers.append(FakeConsumer(own))
            return consumers[0]

        self.source = KafkaSource(
            SourceSettings.of(self.settings), make, settle, self.tracker, dlq, self.handoff,
            Committer(self.tracker, self.state, commit_metadata("t")), self.state,
        )  # fmt: skip
        self.kafka = consumers[0]
        consume = self.kafka.consume

        def timed(num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
            self.timeouts.append(timeout)
            return consume(num_messages, timeout)

        self.kafka.consume = timed  # type: ignore[method-assign]
        self.source._subscribe()
        self.kafka.assign(TP)

    def offer(self, offsets: range) -> None:
        """What the next consume() returns (the fake hands back whatever it holds)."""
        self.kafka.batches.append([FakeMessage(TP[0], TP[1], o) for o in offsets])


def test_the_consumer_thread_hands_over_small_steps_one_consume_each() -> None:
    rig = SourceRig()
    batch = rig.settings.kafka.poll_batch
    assert batch == 64  # the shipped hand-over: ~2-3 ms of decode and map work
    for start in range(0, 3 * batch, batch):
        rig.offer(range(start, start + batch))
        rig.source.step()
    assert rig.kafka.asked[-3:] == [batch, batch, batch]  # never more per consume()
    assert rig.handoff.batches == [batch, batch, batch]  # one hand-over per step
    assert [w.offset for w in rig.handoff.works] == list(range(3 * batch))


def test_without_room_the_thread_waits_for_the_workers_then_reads_at_most_one_step() -> None:
    rig = SourceRig()
    rig.handoff.room = lambda: False  # the workers have plenty waiting
    rig.offer(range(10))
    rig.source.step()
    # It slept (the lock released) for the room wait, not for the short poll wait: a
    # room wait of poll_wait_seconds would read a step every 5 ms whatever the loop has.
    assert rig.handoff.waits and rig.handoff.waits[-1] == ROOM_WAIT
    assert rig.settings.kafka.poll_wait_seconds < ROOM_WAIT
    assert rig.timeouts[-1] == 0.0  # then one step without waiting for more to arrive
    assert rig.kafka.asked[-1] == rig.settings.kafka.poll_batch
    rig.handoff.room = lambda: True
    rig.offer(range(10, 20))
    rig.source.step()
    # With room: consume waits for a batch to fill as long as poll_wait_seconds says.
    assert rig.timeouts[-1] == rig.settings.kafka.poll_wait_seconds


def test_the_ceiling_still_bounds_what_one_step_reads() -> None:
    rig = SourceRig()
    ceiling = rig.settings.delivery.max_buffered_records
    for offset in range(ceiling - 10):
        rig.tracker.admit(TP, offset)
    rig.offer(range(ceiling - 10, ceiling))
    rig.source.step()
    assert rig.kafka.asked[-1] == 10  # the room left, below poll_batch


# -- the credit between the thread and the loop -----------------------------------------


def test_flow_wakes_the_waiting_thread_once_fewer_than_low_wait_for_a_worker() -> None:
    flow = Flow(low=4)
    flow.handed(6)
    assert not flow.wait_for_room(0)  # 6 waiting: no room
    woke: list[float] = []

    def consumer() -> None:
        started = time.monotonic()
        if flow.wait_for_room(5):
            woke.append(time.monotonic() - started)

    thread = threading.Thread(target=consumer)
    thread.start()
    time.sleep(0.05)
    flow.took(2)  # 4 waiting: still not below low
    time.sleep(0.05)
    assert not woke
    flow.took()  # 3 waiting
    thread.join(5)
    assert woke and woke[0] < 1.0
    assert flow.waiting == 3


def test_lanes_count_what_workers_take_and_what_a_release_drops() -> None:
    flow = Flow(low=1)
    lanes = Lanes(flow)
    flow.handed(5)
    lanes.submit([work(0, "a"), work(1, "a"), work(2, "b"), work(3, "c"), work(4, "d")])
    first = lanes.take()
    assert first is not None and flow.waiting == 4
    again = lanes.done(first)  # a's next head is the oldest: handed straight back
    assert again is not None and again.offset == 1 and flow.waiting == 3
    lanes.drop({TP})  # b, c and d: dropped on a revoke, no worker will take them
    assert flow.waiting == 0


# -- the band, with a real dispatcher on a loop of its own -----------------------------------


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def running() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


class SlowSender:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.release = asyncio.Event()
        self.hold: set[bytes] = set()

    async def send(self, body: bytes) -> Answer:
        if body in self.hold:
            await self.release.wait()
        await asyncio.sleep(self.seconds)
        return OK


def test_records_waiting_stay_in_a_narrow_band(running: LoopThread) -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    settings = DeliverySettings(max_in_flight=8)
    dispatcher = Dispatcher(SlowSender(0.002), FakeDeadLetters(), tracker, settings, RunState())
    running.run(_start(dispatcher))
    handoff = Handoff(dispatcher, running.loop, dispatcher.flow)
    step, most = 16, 0
    for start in range(0, 1600, step):  # the consumer thread's loop, reduced to pacing
        assert handoff.wait_for_room(5)
        most = max(most, dispatcher.flow.waiting)
        works = [work(o, f"guest-{o % 50}", epoch) for o in range(start, start + step)]
        tracker.admit_many([(TP, w.offset) for w in works])
        handoff.submit(works)
    assert tracker.wait_drained(None, 10)
    running.run(dispatcher.stop())
    low = dispatcher.flow.low
    assert low == 2 * settings.max_in_flight
    assert most < low  # a step starts only below low ...
    assert dispatcher.flow.waiting == 0  # ... so at most low + step ever wait; none at the end


# -- what a finished record holds --------------------------------------------------------------


def test_a_finished_record_frees_its_buffer_room_while_an_older_one_holds_the_commit_point(
    running: LoopThread,
) -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    sender = SlowSender(0.0)
    dispatcher = Dispatcher(
        sender, FakeDeadLetters(), tracker, DeliverySettings(max_in_flight=16), RunState()
    )
    running.run(_start(dispatcher))
    works = [work(0, "stuck", epoch)] + [work(o, f"guest-{o}", epoch) for o in range(1, 100)]
    sender.hold = {works[0].events[0].body}
    tracker.admit_many([(TP, w.offset) for w in works])
    Handoff(dispatcher, running.loop, dispatcher.flow).submit(works)
    deadline = time.monotonic() + 5
    while tracker.pending > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    # The buffer counts records without an outcome: 99 delivered ones hold no room, only
    # their offsets in the commit's finished set; the commit point waits for offset 0.
    assert tracker.pending == 1
    assert dispatcher.flow.waiting == 0
    state = tracker.to_commit()[TP]
    assert state.offset == 0 and state.finished == tuple(range(1, 100))
    running.loop.call_soon_threadsafe(sender.release.set)
    assert tracker.wait_drained(None, 5)
    assert tracker.to_commit()[TP].offset == 100
    running.run(dispatcher.stop())


async def _start(dispatcher: Dispatcher) -> None:
    dispatcher.start()
