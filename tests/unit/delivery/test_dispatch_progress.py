"""Dispatch bookkeeping a test of the whole flow did not pin: per-event progress of a
two-event record, the in-flight counts the revoke waits on, the first back-off and the
credentials probe's pause."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from connector.cdp.client import Answer, Outcome
from connector.records import Work
from tests.unit.delivery.test_dispatch_redelivery import OK, P0, REFUSED, Harness, Sender

INITIAL_BACKOFF = 0.4
DOWN = Answer(Outcome.RETRYABLE, 503, "unavailable")


async def run_until(h: Harness, works: list[Work], done: Callable[[], bool]) -> None:
    """Submit ``works``, start the dispatcher, wait for ``done``, stop it (also when the
    wait times out)."""
    h.dispatcher.submit(works)
    h.dispatcher.start()
    try:
        await h.until(done)
    finally:
        await h.dispatcher.stop()


async def test_a_two_event_record_whose_second_is_refused_names_the_first_as_delivered() -> None:
    """The issue's VIEW + ADD: the dead letter says VIEW (index 0) got through and ADD
    (index 1) failed, so replay posts only the ADD."""
    bad = Answer(Outcome.PERMANENT, 400, "product: required")
    sender = Sender(lambda body: bad if body.endswith(b":1") else OK)
    h = Harness(sender)
    work = h.work(P0, "guest", "VIEW", "ADD")
    await run_until(h, [work], lambda: len(h.dlq.failures) == 1)
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
    await run_until(h, [h.work(P0, "guest")], lambda: h.tracker.pending == 0)
    assert len(h.sleeps) == 1
    assert INITIAL_BACKOFF / 2 <= h.sleeps[0] < INITIAL_BACKOFF


async def test_refused_credentials_are_probed_every_auth_probe_seconds() -> None:
    """A 401 halts delivery; the refused event is sent again after ``auth_probe_seconds``
    until it is accepted, then delivered once (nothing dead-lettered)."""
    answers = iter([REFUSED, REFUSED, OK])
    sender = Sender(lambda _body: next(answers))
    h = Harness(sender, auth_probe_seconds=7.5)
    await run_until(h, [h.work(P0, "guest")], lambda: h.tracker.pending == 0)
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
    await run_until(h, [h.work(P0, "guest")], lambda: h.tracker.pending == 0)
    assert len(sender.calls) == 3
    assert h.sleeps[0] == 7.5 and len(h.sleeps) == 2
    assert INITIAL_BACKOFF / 2 <= h.sleeps[1] < INITIAL_BACKOFF


async def test_stop_returns_once_every_worker_has_ended() -> None:
    """``stop`` cancels the workers and waits for them, a request in flight included:
    nothing of the dispatcher runs on after it (the loop may close at once)."""
    sender = Sender()
    h = Harness(sender, max_in_flight=3)
    work = h.work(P0, "guest")
    sender.hold[work.events[0].body] = asyncio.Event()  # never answered
    h.dispatcher.submit([work])
    h.dispatcher.start()
    await h.until(lambda: len(sender.calls) == 1)
    workers = {t for t in asyncio.all_tasks() if t.get_name().startswith("dispatch-")}
    assert len(workers) == 3
    await h.dispatcher.stop()
    assert all(t.done() for t in workers)


async def _exhausted_during_a_credentials_halt(release_first: bool) -> Harness:
    """Record B's 401 halts delivery and B probes; record A's request, in flight
    meanwhile, answers 503 and exhausts its one attempt under the halt policy, so A
    waits for the halt to lift. ``release_first``: A's partition is revoked before B's
    probe succeeds and lifts the halt."""
    a_body, b_body = b"0:0:0", b"1:0:0"
    answers = {b_body: iter([REFUSED, OK])}
    sender = Sender(lambda body: next(answers[body]) if body in answers else DOWN)
    sender.hold[a_body] = asyncio.Event()
    probe = asyncio.Event()

    async def on_sleep(_seconds: float) -> None:
        await probe.wait()  # B's probe waits until the test lets it go

    h = Harness(
        sender, max_in_flight=2, on_retries_exhausted="halt",
        retry={"max_attempts": 1}, circuit={"failure_threshold": 100},
    )  # fmt: skip
    h.on_sleep = on_sleep
    a, b = h.work(("clicks", 0), "a"), h.work(("clicks", 1), "b")
    h.dispatcher.submit([a, b])
    h.dispatcher.start()
    await h.until(lambda: h.state.halted_reason is not None)  # B's 401
    sender.hold[a_body].set()  # A's 503: exhausted, halts too, waits
    await h.until(lambda: "on_retries_exhausted" in (h.state.halted_reason or ""))
    if release_first:
        h.dispatcher.release({("clicks", 0)})
    probe.set()  # B's probe is accepted: the halt lifts
    await h.until(lambda: len(sender.calls) == 3 and h.tracker.pending <= 1)
    for _ in range(20):
        await asyncio.sleep(0)
    await h.dispatcher.stop()
    return h


async def test_a_record_revoked_while_halted_is_not_dead_lettered_when_the_halt_lifts() -> None:
    h = await _exhausted_during_a_credentials_halt(release_first=True)
    assert h.dlq.failures == []


async def test_a_record_still_owned_is_dead_lettered_when_the_halt_lifts() -> None:
    h = await _exhausted_during_a_credentials_halt(release_first=False)
    assert [w.offset for w, _ in h.dlq.failures] == [0]
