"""RunState: what readiness and /readyz say, why consumption pauses, the warnings of
each transition (halted, resumed, circuit opened and closed)."""

from __future__ import annotations

import logging

import pytest

from connector.run_state import RunState


def subscribed() -> RunState:
    state = RunState()
    state.subscribed = True
    return state


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_missing_topic_makes_the_connector_not_ready_and_names_it() -> None:
    state = subscribed()
    assert state.readiness() == (True, [])
    state.missing_topics = ("clicks", "orders")
    assert state.readiness() == (False, ["subscribed topics missing: clicks, orders"])


def test_a_dependency_that_is_waited_out_is_degraded_not_unready() -> None:
    state = subscribed()
    state.degraded_reason = "schema registry http://r:8081 unreachable: refused"
    state.open_circuit("20 consecutive retryable failures, the last HTTP 503: down")
    assert state.readiness() == (True, [])
    assert state.degraded() == [
        "CDP circuit open: 20 consecutive retryable failures, the last HTTP 503: down",
        "schema registry http://r:8081 unreachable: refused",
    ]
    state.close_circuit()
    state.degraded_reason = None
    assert state.degraded() == []


def test_pause_reason_names_what_blocks_delivery_first() -> None:
    state = subscribed()
    assert state.pause_reason is None
    state.degraded_reason = "schema registry unreachable"
    assert state.pause_reason == "schema registry unreachable"
    state.open_circuit("3 consecutive retryable failures, the last no answer: timeout")
    assert state.pause_reason == (
        "CDP circuit open: 3 consecutive retryable failures, the last no answer: timeout"
    )
    state.halt("CDP refused the credentials")
    assert state.pause_reason == "delivery halted: CDP refused the credentials"


def test_each_transition_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = subscribed()
    state.open_circuit("5 consecutive retryable failures, the last HTTP 503: outage")
    state.close_circuit()
    state.close_circuit()  # already closed: nothing to say
    state.halt("HTTP 401")
    state.halt("HTTP 401")  # the same halt again: said once
    state.resume()
    state.resume()
    lines = warnings(caplog)
    assert len(lines) == 4, lines
    assert lines[0].startswith(
        "CDP circuit opened: 5 consecutive retryable failures, the last HTTP 503: outage"
    )
    assert lines[1].startswith("CDP circuit closed after ")
    assert "(5 consecutive retryable failures, the last HTTP 503: outage)" in lines[1]
    assert lines[2] == "delivery halted: HTTP 401"
    assert lines[3] == "delivery resumed after: HTTP 401"
