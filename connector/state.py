"""What the connector as a whole is doing, shared by the stages, health and metrics.

Written from the event loop and the consumer thread; every field is a plain value
whose single assignment is atomic under the GIL, and readers only need a recent view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Flags that decide readiness and whether consumption pauses."""

    halted_reason: str | None = None  # 401/403, DLQ write failed, retries exhausted (halt mode)
    circuit_open: bool = False
    broker_down_since: float | None = None
    degraded_reason: str | None = None  # e.g. schema registry unreachable (retrying)
    assigned: int = 0
    subscribed: bool = False
    stopping: bool = False
    fatal_exit: str | None = None  # a failure that must end the process (exit code 1)

    def halt(self, reason: str) -> None:
        if self.halted_reason != reason:
            log.error("delivery halted: %s", reason)
        self.halted_reason = reason

    def resume(self) -> None:
        if self.halted_reason is not None:
            log.warning("delivery resumed after: %s", self.halted_reason)
        self.halted_reason = None

    def fail(self, reason: str) -> None:
        """Something happened that the connector must not continue after."""
        log.critical("stopping: %s", reason)
        self.fatal_exit = reason
        self.halted_reason = reason

    @property
    def should_pause(self) -> bool:
        """Stop reading more records: nothing could be delivered now anyway."""
        return self.halted_reason is not None or self.circuit_open

    def readiness(self) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        if self.halted_reason is not None:
            reasons.append(f"halted: {self.halted_reason}")
        if self.broker_down_since is not None:
            reasons.append("Kafka brokers unreachable")
        if not self.subscribed:
            reasons.append("not subscribed yet")
        if self.stopping:
            reasons.append("shutting down")
        return (not reasons, reasons)
