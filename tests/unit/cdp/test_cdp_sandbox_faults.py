"""Fault decisions of the sandbox, with a fake clock and a seeded RNG."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from connector.cdp.sandbox.faults import Decision, FaultInjector, Faults


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_faults_proceeds() -> None:
    assert FaultInjector().decide() == Decision()


def test_rate_ceiling_answers_429_above_max_rps_and_refills() -> None:
    clock = Clock()
    injector = FaultInjector(Faults(max_rps=5), clock=clock)
    statuses = [injector.decide().status for _ in range(8)]
    assert statuses == [None] * 5 + [429] * 3
    clock.now += 1.0
    assert injector.decide().status is None


def test_shares_are_roughly_respected() -> None:
    injector = FaultInjector(Faults(error_rate=0.3, error_status=500), seed=1)
    errors = sum(injector.decide().status == 500 for _ in range(2000))
    assert 450 < errors < 750


def test_outage_until_answers_503_then_recovers() -> None:
    wall = Clock()
    injector = FaultInjector(Faults(outage_until=wall.now + 5), wall=wall)
    assert injector.decide().status == 503
    wall.now += 6
    assert injector.decide() == Decision()


def test_outage_drop_mode_drops() -> None:
    wall = Clock()
    injector = FaultInjector(Faults(outage_until=wall.now + 5, outage_mode="drop"), wall=wall)
    assert injector.decide().drop


def test_429_retry_after_as_http_date() -> None:
    wall = Clock()
    injector = FaultInjector(
        Faults(rate_429=1.0, retry_after=30, retry_after_http_date=True), wall=wall
    )
    decision = injector.decide()
    assert decision.status == 429 and decision.retry_after is not None
    assert parsedate_to_datetime(decision.retry_after).timestamp() == wall.now + 30


def test_latency_is_fixed_plus_jitter() -> None:
    injector = FaultInjector(Faults(latency_ms=100, latency_jitter_ms=50), seed=3)
    delays = [injector.decide().delay for _ in range(100)]
    assert all(0.1 <= d <= 0.15 for d in delays)
    assert len(set(delays)) > 1


def test_bad_fault_values_are_refused() -> None:
    with pytest.raises(ValueError):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError):
        Faults(error_status=404)
