"""The gate every delivery attempt passes: halts, the circuit breaker, the rate limit.

Failures that are not about one record never spend a record's retries: while the
circuit is open or delivery is halted (401/403, ``on_retries_exhausted: halt``), the
dispatcher's workers wait here, and ``RunState`` shows why (``/readyz``, metrics).
Everything runs on the event loop; only ``connector.delivery.dispatcher`` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from connector.cdp.answer import Answer
from connector.config import DeliverySettings
from connector.delivery.retry import CircuitBreaker, CircuitState, RateLimiter
from connector.run_state import RunState

__all__ = ["Gate"]


class Gate:
    """Where attempts wait while delivery is halted or the circuit is open."""

    def __init__(
        self,
        settings: DeliverySettings,
        state: RunState,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        circuit = settings.circuit
        self.breaker = CircuitBreaker(
            circuit.failure_threshold, circuit.open_seconds, circuit.max_open_seconds
        )
        self._limiter = (
            RateLimiter(settings.rate_limit_per_second) if settings.rate_limit_per_second else None
        )
        self._state = state
        self._sleep = sleep
        self._resumed = asyncio.Event()
        self._resumed.set()

    @property
    def open(self) -> bool:
        """Nothing to wait for (not halted, circuit closed, no rate limit): the caller
        may skip ``wait``, and the coroutine it costs, on this attempt."""
        return self._limiter is None and self._resumed.is_set() and self.breaker.closed

    async def wait(self) -> bool:
        """Wait while halted or the circuit is open; then take a rate-limit token.
        True when the circuit let this caller through as its one probe."""
        while True:
            if not self._resumed.is_set():
                await self._resumed.wait()
                continue
            wait = self.breaker.wait_time()
            if wait <= 0:
                break
            await self._sleep(min(wait, 1.0))
        probe = self.breaker.state is CircuitState.HALF_OPEN
        if self._limiter is not None and (delay := self._limiter.delay()) > 0:
            await self._sleep(delay)
        return probe

    @property
    def halted(self) -> bool:
        """Delivery is halted (401/403, or retries exhausted in halt mode) until ``resume``."""
        return not self._resumed.is_set()

    def halt(self, reason: str) -> None:
        """Stop every attempt at the gate until ``resume``; ``reason`` goes to RunState."""
        self._resumed.clear()
        self._state.halt(reason)

    def refused(self, answer: Answer, probe_seconds: float) -> None:
        """401/403: halt, saying how to fix it; the caller probes every ``probe_seconds``."""
        self.halt(
            f"CDP refused the credentials (HTTP {answer.status}: {answer.reason}); fix the "
            f"client key / API token; re-trying every {probe_seconds:g}s"
        )

    def resume(self) -> None:
        """Lift a halt: RunState forgets it and every waiting attempt goes on (the
        probing worker calls it once the credentials are accepted, or when its record left)."""
        self._state.resume()
        self._resumed.set()

    async def until_resumed(self) -> None:
        """Wait until ``resume`` lifts the halt (no rate-limit token, no circuit check)."""
        await self._resumed.wait()

    def succeeded(self) -> None:
        """An answer from a CDP that is up (delivered, or refused for the event itself)."""
        if self.breaker.record_success():
            self._state.close_circuit()

    def failed(self, answer: Answer) -> None:
        """A retryable answer; may open the circuit."""
        if self.breaker.record_failure():
            status = f"HTTP {answer.status}" if answer.status else "no answer"
            self._state.open_circuit(
                f"{self.breaker.failures} consecutive retryable failures, "
                f"the last {status}: {answer.reason}"
            )
