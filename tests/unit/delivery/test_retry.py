"""Backoff, circuit breaker and rate limiter decisions, with a fake clock."""

from __future__ import annotations

import pytest

from connector.config import CircuitSettings
from connector.delivery.retry import Backoff, CircuitBreaker, CircuitState, RateLimiter
from connector.settle.stage import TRANSIENT_BACKOFF


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_and_is_capped() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, rand=lambda: 1.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_backoff_jitter_stays_within_half_to_full() -> None:
    assert Backoff(1.0, 10.0, rand=lambda: 0.0).delay(2) == pytest.approx(1.0)


def test_backoff_honours_retry_after() -> None:
    assert Backoff(0.1, 30.0, rand=lambda: 1.0).delay(1, retry_after=7.0) == 7.0


def test_retry_after_is_capped_at_the_maximum_backoff() -> None:
    assert Backoff(0.1, 30.0, rand=lambda: 1.0).delay(1, retry_after=3600.0) == 30.0


def test_circuit_opens_after_threshold_and_probes_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=5, max_open_seconds=40, clock=clock)
    for _ in range(3):
        assert breaker.wait_time() == 0
        breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.wait_time() == pytest.approx(5)

    clock.now += 5
    assert breaker.wait_time() == 0  # the probe
    assert breaker.wait_time() > 0  # everyone else waits for it
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.wait_time() == pytest.approx(10)  # doubled

    clock.now += 10
    assert breaker.wait_time() == 0
    breaker.record_success()
    assert breaker.closed
    assert breaker.wait_time() == 0


def test_success_resets_consecutive_failures() -> None:
    breaker = CircuitBreaker(3, 1, 10, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.closed


def test_rate_limiter_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, clock=clock)
    assert limiter.delay() == 0
    assert limiter.delay() == 0
    assert limiter.delay() == pytest.approx(0.5)
    clock.now += 1.0
    assert limiter.delay() == pytest.approx(0.0, abs=1e-9)


def test_the_breaker_says_when_it_opened_and_when_it_closed() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, open_seconds=1, max_open_seconds=5, clock=clock)
    assert breaker.record_failure() is False
    assert breaker.record_failure() is True  # this one opened it
    assert breaker.failures == 2
    clock.now += 1
    assert breaker.wait_time() == 0  # the probe
    assert breaker.record_failure() is False  # a failed probe re-opens: no news
    clock.now += 2
    assert breaker.wait_time() == 0
    assert breaker.record_success() is True  # the probe closed it
    assert breaker.record_success() is False


def test_probes_and_registry_retries_come_every_few_seconds_by_default() -> None:
    """How late delivery resumes after the CDP or the registry is back."""
    circuit = CircuitSettings()
    clock = FakeClock()
    breaker = CircuitBreaker(
        circuit.failure_threshold, circuit.open_seconds, circuit.max_open_seconds, clock=clock
    )
    for _ in range(circuit.failure_threshold):
        breaker.record_failure()
    waits = []
    for _ in range(10):  # a long outage: every probe fails
        waits.append(breaker.wait_time())
        clock.now += waits[-1]
        assert breaker.wait_time() == 0
        breaker.record_failure()
    assert max(waits) <= 5.0
    assert TRANSIENT_BACKOFF.maximum <= 5.0


def test_open_period_doubles_up_to_the_ceiling_and_a_success_resets_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5, max_open_seconds=12, clock=clock)
    breaker.record_failure()
    waits = []
    for _ in range(3):  # each probe fails: 5 → 10 → 12 (capped) → 12
        clock.now += breaker.wait_time()
        assert breaker.wait_time() == 0  # the probe goes
        breaker.record_failure()
        waits.append(breaker.wait_time())
    assert waits == [pytest.approx(10), pytest.approx(12), pytest.approx(12)]

    clock.now += 12
    assert breaker.wait_time() == 0
    breaker.record_success()
    breaker.record_failure()  # the next outage starts from the first period again
    assert breaker.wait_time() == pytest.approx(5)


def test_an_open_circuit_waits_out_its_last_second_too() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5, max_open_seconds=40, clock=clock)
    breaker.record_failure()
    clock.now += 4.5
    assert breaker.wait_time() == pytest.approx(0.5)
    assert breaker.state is CircuitState.OPEN


def test_callers_behind_a_probe_look_again_within_half_a_second() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5, max_open_seconds=40, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.wait_time() == 0  # the probe
    assert breaker.wait_time() == 0.5


def test_rate_limiter_below_one_per_second_bursts_one_request() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0.5, clock=clock)
    assert limiter.delay() == 0
    assert limiter.delay() == pytest.approx(2.0)


def test_rate_limiter_with_a_partial_token_left_never_answers_a_negative_delay() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, clock=clock)
    assert [limiter.delay(), limiter.delay()] == [0, 0]  # the burst
    clock.now += 0.75  # 1.5 tokens back
    assert limiter.delay() == 0.0
    assert limiter.delay() == pytest.approx(0.25)
