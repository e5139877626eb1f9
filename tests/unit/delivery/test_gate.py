"""The delivery gate: why the circuit opened, and how long attempts wait at it.

The sleep is injected (never real); the breaker's clock is the real monotonic one,
which only has to stay within an open period of 30 s during a test."""

from __future__ import annotations

import asyncio

from connector.cdp.answer import Answer, Outcome
from connector.config import CircuitSettings, DeliverySettings
from connector.delivery.gate import Gate
from connector.run_state import RunState

SETTINGS = DeliverySettings(
    circuit=CircuitSettings(failure_threshold=2, open_seconds=30, max_open_seconds=60)
)


def gate_with(slept: list[float]) -> tuple[Gate, RunState]:
    state = RunState()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        gate.succeeded()  # another worker's probe got through: the circuit closes

    gate = Gate(SETTINGS, state, sleep)
    return gate, state


def test_the_circuit_reason_names_the_count_and_a_missing_answer() -> None:
    gate, state = gate_with([])
    gate.failed(Answer(Outcome.RETRYABLE, None, "connection refused"))
    gate.failed(Answer(Outcome.RETRYABLE, None, "connection refused"))
    assert state.circuit_reason == (
        "2 consecutive retryable failures, the last no answer: connection refused"
    )


def test_the_circuit_reason_names_the_last_http_status() -> None:
    gate, state = gate_with([])
    gate.failed(Answer(Outcome.RETRYABLE, None, "timed out"))
    gate.failed(Answer(Outcome.RETRYABLE, 503, "unavailable"))
    assert state.circuit_reason == (
        "2 consecutive retryable failures, the last HTTP 503: unavailable"
    )


async def test_a_closed_circuit_lets_waiting_attempts_go_within_a_second() -> None:
    slept: list[float] = []
    gate, _ = gate_with(slept)
    gate.failed(Answer(Outcome.RETRYABLE, 503, "unavailable"))
    gate.failed(Answer(Outcome.RETRYABLE, 503, "unavailable"))  # open for 30 s
    async with asyncio.timeout(1):
        assert await gate.wait() is False  # closed meanwhile: not a probe
    assert sum(slept) <= 1.0  # looked again within a second, not after the 30 s


async def test_a_resumed_gate_still_holds_attempts_while_the_circuit_is_open() -> None:
    slept: list[float] = []
    gate, _ = gate_with(slept)
    gate.failed(Answer(Outcome.RETRYABLE, 503, "unavailable"))
    gate.failed(Answer(Outcome.RETRYABLE, 503, "unavailable"))
    gate.halt("credentials refused")
    waiting = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    assert not waiting.done() and slept == []  # halted: waits for resume, no polling
    gate.resume()
    async with asyncio.timeout(1):
        await waiting
    assert slept  # after the resume it waited for the circuit too
