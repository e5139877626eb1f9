"""The dispatcher's lanes: oldest head first, one record of a lane at a time."""

from __future__ import annotations

import asyncio

from connector.delivery.lanes import Lanes
from connector.records import Work

TP = ("clicks", 0)


def work(offset: int, lane: str, tp: tuple[str, int] = TP) -> Work:
    return Work(tp, offset, 1, None, b"v", None, lane, ())


def test_the_lane_whose_head_waited_longest_is_taken_first() -> None:
    lanes = Lanes()
    lanes.submit([work(0, "a"), work(1, "b"), work(2, "a"), work(3, "c")])
    first = lanes.take()
    assert first is not None and first.offset == 0
    second = lanes.take()
    assert second is not None and second.offset == 1
    # a's next head (2) is older than c's (3): done(first) hands it straight back
    again = lanes.done(first)
    assert again is not None and again.offset == 2
    third = lanes.take()
    assert third is not None and third.offset == 3
    assert lanes.take() is None  # a and c are taken, b is taken: nothing ready


def test_a_taken_lane_is_not_handed_out_twice_until_done() -> None:
    lanes = Lanes()
    lanes.submit([work(0, "a")])
    taken = lanes.take()
    lanes.submit([work(1, "a")])  # arrives while a's head is being posted
    assert lanes.take() is None
    assert taken is not None
    nxt = lanes.done(taken)
    assert nxt is not None and nxt.offset == 1
    assert lanes.done(nxt) is None and lanes.queued == 0


def test_a_lane_older_than_the_finished_ones_next_head_goes_first() -> None:
    lanes = Lanes()
    lanes.submit([work(0, "a"), work(1, "b"), work(2, "c"), work(3, "b")])
    a0, b1 = lanes.take(), lanes.take()
    assert a0 is not None and b1 is not None
    nxt = lanes.done(b1)  # b's next head (3) is younger than c's (2)
    assert nxt is not None and nxt.offset == 2
    last = lanes.take()
    assert last is not None and last.offset == 3


def test_dropped_records_are_not_handed_out() -> None:
    lanes = Lanes()
    other = ("clicks", 1)
    lanes.submit([work(0, "a"), work(1, "b", other), work(2, "b")])
    lanes.drop({TP})
    taken = lanes.take()
    assert taken is not None and taken.offset == 1
    assert lanes.take() is None and lanes.queued == 0


async def test_an_idle_worker_wakes_for_each_new_ready_lane() -> None:
    lanes = Lanes()
    woken: list[int] = []

    async def worker(i: int) -> None:
        while (taken := lanes.take()) is None:
            await lanes.wait()
        woken.append(taken.offset)

    workers = [asyncio.create_task(worker(i)) for i in range(3)]
    await asyncio.sleep(0)  # all three wait
    lanes.submit([work(0, "a"), work(1, "b"), work(2, "c")])
    async with asyncio.timeout(1):
        await asyncio.gather(*workers)
    assert sorted(woken) == [0, 1, 2]


async def _settle() -> None:
    for _ in range(5):  # let woken workers run (each wake is one loop iteration)
        await asyncio.sleep(0)


async def test_two_ready_lanes_wake_two_idle_workers_at_once() -> None:
    lanes = Lanes()
    holding: list[int] = []  # records taken and still being "posted"

    async def worker() -> None:
        while (taken := lanes.take()) is None:
            await lanes.wait()
        holding.append(taken.offset)
        await asyncio.Event().wait()  # posting, never done: the lane stays taken

    workers = [asyncio.create_task(worker()) for _ in range(2)]
    await _settle()
    lanes.submit([work(0, "a"), work(1, "b")])
    await _settle()
    for task in workers:
        task.cancel()
    assert sorted(holding) == [0, 1]  # both posted concurrently, neither left asleep


async def test_one_ready_lane_wakes_one_idle_worker_not_all() -> None:
    lanes = Lanes()
    wakes: list[int] = []
    holding: list[int] = []

    async def worker(i: int) -> None:
        while (taken := lanes.take()) is None:
            await lanes.wait()
            wakes.append(i)
        holding.append(taken.offset)

    workers = [asyncio.create_task(worker(i)) for i in range(3)]
    await _settle()
    lanes.submit([work(0, "a")])
    await _settle()
    for task in workers:
        task.cancel()
    assert holding == [0]
    assert len(wakes) == 1  # the other two sleep on: no wake for a lane already taken


def test_a_lane_emptied_by_drop_while_ready_takes_new_records_again() -> None:
    lanes = Lanes()
    lanes.submit([work(0, "a")])
    lanes.drop({TP})  # a is still in the ready heap, now empty
    assert lanes.take() is None
    lanes.submit([work(1, "a")])
    taken = lanes.take()
    assert taken is not None and taken.offset == 1
