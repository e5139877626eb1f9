"""Dispatch bookkeeping a test of the whole flow did not pin: per-event progress of a
two-event record, the in-flight counts the revoke waits on, the first back-off and the
credentials probe's pause."""

from __future__ import annotations

import asyncio

from connector.cdp.client import Answer, Outcome
from tests.unit.test_dispatch_redelivery import OK, P0, REFUSED, Harness, Sender

INITIAL_BACKOFF = 0.4
DOWN = Answer(Outcome.RETRYABLE, 503, "unavailable")


async def test_a_two_event_record_whose_second_is_refused_names_the_first_as_delivered() -> None:
    """The issue's VIEW + ADD: the dead letter says VIEW (index 0) got through and ADD
    (index 1) failed, so replay posts only the ADD."""
    bad = Answer(Outcome.PERMANENT, 400, "product: required")
    sender = Sender(lambda body: bad if body.endswith(b":1") else OK)
    h = Harness(sender)
    work = h.work(P0, "guest", "VIEW", "ADD")
    h.dispatcher.submit([work])
    h.dispatcher.start()
    try:
        await h.until(lambda: len(h.dlq.failures) == 1)
    finally:
        await h.dispatcher.stop()
    failure = h.dlq.failures[0][1]
    assert (failure.event, failure.delivered) == ((1, "ADD"), ((0, "VIEW"),))


async def test_the_revoke_waits_for_every_request_of_the_partition_in_flight() -> None:
    """Two requests of one partition open at once: the in-flight gauge says 2, and the
    revoke's wait ends only when the second has answered, not the first."""
    sender = Sender()
    h = Harness(sender, max_in_flight=2)
    first, second = h.work(P0, "a"), h.work(P0, "b")
    for work in (first, second):
        sender.hold[work.events[0].body] = asyncio.Event()
    h.dispatcher.submit([first, second])
    h.dispatcher.start()
    try:
        await h.until(lambda: len(sender.calls) == 2)
        assert h.dispatcher.requests_in_flight == 2
        h.dispatcher.release({P0})
        waiting = asyncio.create_task(h.dispatcher.wait_in_flight({P0}))
        sender.hold[first.events[0].body].set()
        await h.until(lambda: h.dispatcher.requests_in_flight == 1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done(), "the revoke stopped waiting with a request still open"
        sender.hold[second.events[0].body].set()
        async with asyncio.timeout(5):
            await waiting
        assert h.dispatcher.requests_in_flight == 0
    finally:
        await h.dispatcher.stop()


async def test_the_first_back_off_is_at_most_the_initial_one() -> None:
    """Retry 1 waits ``initial_backoff_seconds`` jittered down (half to all of it)."""
    answers = iter([DOWN, OK])
    h = Harness(
        Sender(lambda _body: next(answers)),
        retry={"initial_backoff_seconds": INITIAL_BACKOFF, "max_attempts": 5},
    )
    h.dispatcher.submit([h.work(P0, "guest")])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    assert len(h.sleeps) == 1
    assert INITIAL_BACKOFF / 2 <= h.sleeps[0] < INITIAL_BACKOFF


async def test_refused_credentials_are_probed_every_auth_probe_seconds() -> None:
    """A 401 halts delivery; the refused event is sent again after ``auth_probe_seconds``
    until it is accepted, then delivered once (nothing dead-lettered)."""
    answers = iter([REFUSED, REFUSED, OK])
    sender = Sender(lambda _body: next(answers))
    h = Harness(sender, auth_probe_seconds=7.5)
    h.dispatcher.submit([h.work(P0, "guest")])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    assert (len(sender.calls), h.dlq.failures) == (3, [])
    assert h.sleeps == [7.5, 7.5]


async def test_a_probe_answered_503_goes_back_to_the_ordinary_back_off() -> None:
    """Once the credentials are accepted (the probe got a non-401 answer) the worker is
    no longer probing: a 503 then waits the back-off, not ``auth_probe_seconds``."""
    answers = iter([REFUSED, DOWN, OK])
    sender = Sender(lambda _body: next(answers))
    h = Harness(
        sender, auth_probe_seconds=7.5,
        retry={"initial_backoff_seconds": INITIAL_BACKOFF, "max_attempts": 5},
    )  # fmt: skip
    h.dispatcher.submit([h.work(P0, "guest")])
    h.dispatcher.start()
    try:
        await h.until(lambda: h.tracker.pending == 0)
    finally:
        await h.dispatcher.stop()
    assert len(sender.calls) == 3
    assert h.sleeps[0] == 7.5 and len(h.sleeps) == 2
    assert INITIAL_BACKOFF / 2 <= h.sleeps[1] < INITIAL_BACKOFF
