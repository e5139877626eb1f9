"""Dispatch outcomes through the public API only (submit, a fake sender, injected sleep):
stale epochs, the halt policy on exhausted retries, the elapsed-time bound on retries."""

from __future__ import annotations

import asyncio

from connector.cdp.client import Answer, Outcome
from connector.config import CircuitSettings, RetrySettings
from tests.unit.test_dispatch import OK, TP, FakeSender, Harness

DOWN = Answer(Outcome.RETRYABLE, 503, "unavailable")
# Never opens during these tests: every failure counts as a spent retry.
CLOSED = CircuitSettings(failure_threshold=10_000)


async def test_records_read_under_an_older_assignment_are_not_posted() -> None:
    sender = FakeSender(lambda body, n: OK)
    h = Harness(sender, max_in_flight=1)
    h.submit(["a", "a"])  # read under the first assignment
    h.epoch = h.tracker.assign(TP)  # revoked and assigned again: a new epoch
    h.submit(["a"])  # same lane, after them

    await h.run_until_finished()

    assert sender.calls == [b"a:2:0"]  # the stale two were skipped, the new owner re-reads them
    assert h.tracker.committable() == {TP: 3}


async def test_exhausted_retries_halt_instead_of_dead_lettering_under_the_halt_policy() -> None:
    sender = FakeSender(lambda body, n: DOWN)
    h = Harness(
        sender, on_retries_exhausted="halt", retry=RetrySettings(max_attempts=2), circuit=CLOSED
    )
    h.submit(["x"])
    h.dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while h.state.halted_reason is None:
                await asyncio.sleep(0.001)
        assert "on_retries_exhausted: halt" in h.state.halted_reason
        assert sender.attempts[b"x:0:0"] == 2
        assert h.dlq.failures == []
        assert h.tracker.committable() == {}  # the record stays without an outcome
    finally:
        await h.dispatcher.stop()


async def test_a_permanent_answer_dead_letters_without_halting_under_the_halt_policy() -> None:
    bad = Answer(Outcome.PERMANENT, 400, "email: invalid")
    h = Harness(FakeSender(lambda body, n: bad), on_retries_exhausted="halt", circuit=CLOSED)
    h.submit(["b"])

    await h.run_until_finished()

    assert [(off, f.exception) for off, f in h.dlq.failures] == [(0, "DeliveryRejected")]
    assert h.state.halted_reason is None


async def test_exhausted_retries_dead_letter_and_do_not_halt_by_default() -> None:
    h = Harness(
        FakeSender(lambda body, n: DOWN), retry=RetrySettings(max_attempts=3), circuit=CLOSED
    )
    h.submit(["x"])

    await h.run_until_finished()

    [(offset, failure)] = h.dlq.failures
    assert (offset, failure.attempts, failure.status) == (0, 3, 503)
    assert h.state.halted_reason is None


async def test_retries_stop_when_their_backoff_reaches_max_elapsed_seconds() -> None:
    retry = RetrySettings(
        max_attempts=1000,
        initial_backoff_seconds=1.0,
        max_backoff_seconds=1.0,  # each wait is 0.5..1.0 s (jitter)
        max_elapsed_seconds=2.5,
    )
    h = Harness(FakeSender(lambda body, n: DOWN), retry=retry, circuit=CLOSED)
    h.submit(["x"])

    await h.run_until_finished()

    [(_, failure)] = h.dlq.failures
    assert failure.exception == "RetriesExhausted"
    assert 3 <= failure.attempts <= 6  # far below max_attempts
    waits = h.sleeps[: failure.attempts - 1]
    assert sum(waits) >= 2.5 > sum(waits[:-1])  # stopped at the first attempt past the bound
