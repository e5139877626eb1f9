"""What the connector as a whole is doing, shared by the stages, health and metrics.

Written from the event loop and the consumer thread; every field is a plain value
whose single assignment is atomic under the GIL, and readers only need a recent view.
The transitions an operator must hear about (halted, resumed, circuit opened and
closed) log their warning here, once per transition, whoever causes them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

__all__ = ["RunState"]

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Flags that decide readiness and whether consumption pauses."""

    halted_reason: str | None = None  # 401/403, DLQ write failed, retries exhausted (halt mode)
    circuit_open: bool = False
    circuit_reason: str | None = None  # what opened the circuit, while it is open
    circuit_opened_at: float | None = None  # monotonic
    broker_down_since: float | None = None
    degraded_reason: str | None = None  # e.g. schema registry unreachable (retrying)
    missing_topics: tuple[str, ...] = ()  # subscribed by name, absent from the cluster
    assigned: int = 0
    assignments: int = 0  # assign callbacks so far, empty ones too (browser ids catch up)
    subscribed: bool = False
    stopping: bool = False
    fatal_exit: str | None = None  # a failure that must end the process (exit code 1)

    def halt(self, reason: str) -> None:
        """Delivery stops until ``resume`` (consumption pauses, not ready); logged once
        per reason. Called through ``delivery.gate.Gate.halt``."""
        if self.halted_reason != reason:
            log.error("delivery halted: %s", reason)
        self.halted_reason = reason

    def resume(self) -> None:
        """Delivery goes on; logs what had halted it."""
        if self.halted_reason is not None:
            log.warning("delivery resumed after: %s", self.halted_reason)
        self.halted_reason = None

    def fail(self, reason: str) -> None:
        """Something happened that the connector must not continue after."""
        log.critical("stopping: %s", reason)
        self.fatal_exit = reason
        self.halted_reason = reason

    def open_circuit(self, why: str) -> None:
        """The dispatcher's circuit breaker opened; ``why`` names the count and the answer."""
        self.circuit_reason = why
        self.circuit_opened_at = time.monotonic()
        self.circuit_open = True
        log.warning("CDP circuit opened: %s; requests wait for a probe to succeed", why)

    def close_circuit(self) -> None:
        """A probe was answered: the CDP is back."""
        if self.circuit_open:
            since = self.circuit_opened_at or time.monotonic()
            log.warning(
                "CDP circuit closed after %.1fs open (%s): delivery resumes",
                time.monotonic() - since,
                self.circuit_reason,
            )
        self.circuit_open = False
        self.circuit_reason = None
        self.circuit_opened_at = None

    @property
    def pause_reason(self) -> str | None:
        """Why delivery cannot progress now, so consumption pauses; None when it can."""
        if self.halted_reason is not None:
            return f"delivery halted: {self.halted_reason}"
        if self.circuit_open:
            return f"CDP circuit open: {self.circuit_reason}"
        return self.degraded_reason

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready, and why not: what only a person (or a restart elsewhere) can fix."""
        reasons: list[str] = []
        if self.halted_reason is not None:
            reasons.append(f"halted: {self.halted_reason}")
        if self.broker_down_since is not None:
            reasons.append("Kafka brokers unreachable")
        if self.missing_topics:
            reasons.append(f"subscribed topics missing: {', '.join(self.missing_topics)}")
        if not self.subscribed:
            reasons.append("not subscribed yet")
        if self.stopping:
            reasons.append("shutting down")
        return (not reasons, reasons)

    def degraded(self) -> list[str]:
        """What slows delivery without making the connector unready: a dependency that is
        down and waited out (restarting would not help)."""
        found: list[str] = []
        if self.circuit_open:
            found.append(f"CDP circuit open: {self.circuit_reason}")
        if self.degraded_reason is not None:
            found.append(self.degraded_reason)
        return found
