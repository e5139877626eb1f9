"""Faults the CDP sandbox can inject, and the per-request decision that applies them.

Set at start by command-line flags, changed at run time through
``/_sandbox/faults``. Decisions use an injectable clock and a seeded RNG so a
test run is repeatable.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Decision", "FaultInjector", "Faults"]


class Faults(BaseModel):
    """Fault settings; every field defaults to "no fault"."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(default=0.0, ge=0.0, description="fixed delay before answering")
    latency_jitter_ms: float = Field(default=0.0, ge=0.0, description="plus uniform 0..jitter")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of 5xx answers")
    error_status: int = Field(default=503, ge=500, le=599, description="the 5xx status used")
    rate_429: float = Field(default=0.0, ge=0.0, le=1.0, description="share of 429 answers")
    retry_after: float = Field(default=1.0, ge=0.0, description="Retry-After seconds on 429")
    retry_after_http_date: bool = Field(default=False, description="send Retry-After as a date")
    max_rps: float | None = Field(default=None, gt=0.0, description="above it: 429, Retry-After")
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of dropped conns")
    outage_until: float | None = Field(default=None, description="epoch s: outage until then")
    outage_mode: Literal["503", "drop"] = Field(default="503", description="outage answer")
    auth_fail: bool = Field(default=False, description="answer 401 to every event request")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one event request before looking at its body."""

    delay: float = 0.0
    drop: bool = False
    status: int | None = None  # answer this status at once (429/5xx/401); None: go on
    retry_after: str | None = None


PROCEED = Decision()


class FaultInjector:
    """Applies the current ``Faults`` to each request (one per sandbox process)."""

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._clock = clock
        self._wall = wall
        self._tokens = 0.0
        self._last = clock()
        self.faults = faults or Faults()  # fills the token bucket

    def reseed(self, seed: int | None) -> None:
        """Start the random faults' sequence again from ``seed``."""
        self._rng.seed(seed)

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Put new faults in force; the rate limit's bucket starts full again."""
        self._faults = faults
        self._tokens = faults.max_rps or 0.0
        self._last = self._clock()
        # Fast path: nothing to do for any request.
        self._idle = faults == Faults()

    def decide(self) -> Decision:
        """The fault (if any) for the request arriving now."""
        if self._idle:
            return PROCEED
        f = self._faults
        rng = self._rng
        if f.outage_until is not None and self._wall() < f.outage_until:
            if f.outage_mode == "drop":
                return Decision(drop=True)
            return Decision(status=503, retry_after=f"{max(1, int(f.outage_until - self._wall()))}")
        if f.max_rps is not None and not self._take_token(f.max_rps):
            return Decision(status=429, retry_after="1")
        delay = f.latency_ms / 1000.0
        if f.latency_jitter_ms:
            delay += rng.uniform(0.0, f.latency_jitter_ms) / 1000.0
        if f.drop_rate and rng.random() < f.drop_rate:
            return Decision(delay=delay, drop=True)
        if f.auth_fail:
            return Decision(delay=delay, status=401)
        if f.rate_429 and rng.random() < f.rate_429:
            return Decision(delay=delay, status=429, retry_after=self._retry_after(f))
        if f.error_rate and rng.random() < f.error_rate:
            return Decision(delay=delay, status=f.error_status)
        return Decision(delay=delay) if delay else PROCEED

    def _retry_after(self, f: Faults) -> str:
        if f.retry_after_http_date:
            return formatdate(self._wall() + f.retry_after, usegmt=True)
        seconds = f.retry_after
        return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"

    def _take_token(self, rate: float) -> bool:
        """Token bucket: ``rate`` per second, bursts up to one second's worth."""
        now = self._clock()
        self._tokens = min(rate, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
