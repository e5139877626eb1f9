"""Retry decisions, the circuit breaker and the rate limiter: pure logic, clock injected.

- ``Backoff``: exponential delay with jitter, floored by the server's Retry-After
  (itself capped at the maximum backoff).
- ``CircuitBreaker``: after ``failure_threshold`` consecutive retryable failures across
  all requests, the circuit opens; callers wait instead of spending retries; after the
  open period one probe goes through (half-open); its success closes the circuit,
  its failure re-opens it for twice as long, up to a ceiling of a few seconds: a
  probe costs one request, and the ceiling is how late delivery resumes after the
  CDP is back.
- ``RateLimiter``: a token bucket; ``delay()`` says how long to wait for a token.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import Enum

__all__ = ["Backoff", "CircuitBreaker", "CircuitState", "Clock", "RateLimiter"]

Clock = Callable[[], float]


class Backoff:
    """Exponential backoff with full jitter; never shorter than a server's Retry-After."""

    def __init__(
        self, initial: float, maximum: float, rand: Callable[[], float] = random.random
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rand = rand

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        jittered = ceiling * (0.5 + 0.5 * self._rand())
        if retry_after is not None:
            # Honour the server, but never beyond our own ceiling: an outage page may
            # say "retry in an hour" while it comes back in a minute.
            return max(jittered, min(retry_after, self.maximum))
        return jittered


class CircuitState(Enum):
    """Where the breaker is: requests go (closed), wait (open), or one probes (half open)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops every caller from hammering a CDP that fails all requests."""

    def __init__(
        self,
        failure_threshold: int,
        open_seconds: float,
        max_open_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._base_open = open_seconds
        self._max_open = max_open_seconds
        self._clock = clock
        self._failures = 0
        self._open_for = open_seconds
        self._opened_at = 0.0  # read only while OPEN, which ``_open`` sets it for
        self._probing = False  # read only while HALF_OPEN, which always enters with False
        self.state = CircuitState.CLOSED

    def wait_time(self) -> float:
        """0 if a request may go now; else seconds until the next probe may go."""
        if self.state is CircuitState.CLOSED:
            return 0.0
        if self.state is CircuitState.OPEN:
            left = self._opened_at + self._open_for - self._clock()
            if left > 0:
                return left
            self.state = CircuitState.HALF_OPEN
            self._probing = False
        if self._probing:
            return min(self._open_for, 0.5)  # someone else is probing: look again soon
        self._probing = True
        return 0.0

    def record_success(self) -> bool:
        """An answer from a CDP that is up; True when this closed an open circuit."""
        was_closed = self.state is CircuitState.CLOSED
        self._failures = 0
        self._open_for = self._base_open
        self.state = CircuitState.CLOSED
        return not was_closed

    def record_failure(self) -> bool:
        """A retryable failure (network, timeout, 429, 5xx); True when this opened the
        circuit (a failed probe re-opens it, which is not news)."""
        self._failures += 1
        if self.state is CircuitState.HALF_OPEN:
            self._open_for = min(self._open_for * 2, self._max_open)
            self._open()
        elif self.state is CircuitState.CLOSED and self._failures >= self._threshold:
            self._open()
            return True
        return False

    @property
    def failures(self) -> int:
        """Consecutive retryable failures so far (what opened the circuit, while open)."""
        return self._failures

    def probe_not_sent(self) -> None:
        """The caller ``wait_time`` let through will not send after all (its record is no
        longer ours): let the next caller probe instead of waiting for an answer forever."""
        self._probing = False

    def _open(self) -> None:
        self.state = CircuitState.OPEN
        self._opened_at = self._clock()

    @property
    def closed(self) -> bool:
        """No outage: a retryable failure now spends the record's retries."""
        return self.state is CircuitState.CLOSED


class RateLimiter:
    """Token bucket: at most ``rate`` events per second, bursts up to one second's worth."""

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()

    def delay(self) -> float:
        """Take a token; return how long to wait before using it (0 if available now)."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
