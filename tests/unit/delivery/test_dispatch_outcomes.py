"""Dispatch outcomes through the public API only (submit, a fake sender, injected sleep):
stale epochs, the halt policy on exhausted retries, the elapsed-time bound on retries."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from connector.cdp.client import Answer, Outcome
from connector.config import CircuitSettings, DeliverySettings, RetrySettings
from connector.delivery.dispatcher import Dispatcher
from connector.records import Failure
from tests.unit.delivery.test_dispatch import OK, TP, FakeSender, Harness
from tests.unit.fake_kafka import commit_points

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
    assert commit_points(h.tracker) == {TP: 3}


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
        assert h.tracker.to_commit() == {}  # the record stays without an outcome
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


async def test_dead_letters_carry_the_rule_the_status_and_the_attempts() -> None:
    bad = Answer(Outcome.PERMANENT, 400, "email: invalid")
    sender = FakeSender(lambda body, n: bad if body.startswith(b"b:") else DOWN)
    h = Harness(sender, retry=RetrySettings(max_attempts=3), circuit=CLOSED)
    h.submit(["b", "x"])

    await h.run_until_finished()

    assert dict(h.dlq.failures) == {
        0: Failure("email: invalid", "rule", 400, 1),
        1: Failure("retries exhausted after 3 attempts: unavailable", "rule", 503, 3,
                   exception="RetriesExhausted"),
    }  # fmt: skip


async def test_the_rate_limit_spaces_requests_through_the_injected_sleep() -> None:
    h = Harness(FakeSender(lambda body, n: OK), max_in_flight=1, rate_limit_per_second=2)
    h.submit(["a", "b", "c", "d", "e"])

    await h.run_until_finished()

    # A burst of two, then one every half second (the fake sleep lets no time pass).
    assert h.sleeps == [pytest.approx(s, abs=0.05) for s in (0.5, 1.0, 1.5)]


class RecordingObserver:
    def __init__(self) -> None:
        self.answers: list[tuple[str, int | None, float]] = []
        self.done: Counter[tuple[str, str]] = Counter()
        self.delivered = 0

    def answered(self, event_type: str, answer: Answer, seconds: float) -> None:
        self.answers.append((event_type, answer.status, seconds))

    def event_done(self, event_type: str, outcome: str) -> None:
        self.done[(event_type, outcome)] += 1

    def record_delivered(self) -> None:
        self.delivered += 1


async def test_the_observer_hears_every_answer_and_every_outcome() -> None:
    bad = Answer(Outcome.PERMANENT, 400, "email: invalid")

    def script(body: bytes, n: int) -> Answer:
        if body.startswith(b"b:"):
            return bad
        return DOWN if body.startswith(b"c:") and n == 1 else OK

    sender = FakeSender(script)
    h = Harness(sender, circuit=CLOSED)
    observer = RecordingObserver()
    h.dispatcher = Dispatcher(sender, h.dlq, h.tracker, DeliverySettings(circuit=CLOSED),
                              h.state, observer=observer, sleep=h.dispatcher._sleep)  # fmt: skip
    h.submit(["a", "b", "c"])

    await h.run_until_finished()

    assert observer.done == {("VIEW", "delivered"): 2, ("VIEW", "dead_lettered"): 1,
                             ("VIEW", "retried"): 1}  # fmt: skip
    assert sorted(status for _, status, _ in observer.answers) == [201, 201, 400, 503]
    assert all(t == "VIEW" and 0 <= s < 5 for t, _, s in observer.answers)
    assert observer.delivered == 2
    assert h.dispatcher.requests_in_flight == 0


async def test_every_event_of_a_record_is_delivered_before_it_is_finished() -> None:
    sender = FakeSender(lambda body, n: OK)
    h = Harness(sender)
    h.submit(["a", "b"], events_per_record=3)

    await h.run_until_finished()

    assert sorted(sender.calls) == sorted(
        f"{k}:{o}:{i}".encode() for k, o in (("a", 0), ("b", 1)) for i in range(3)
    )
    assert commit_points(h.tracker) == {TP: 2}
