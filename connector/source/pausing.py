"""Back-pressure: when the consumer stops reading, globally or per partition.

Two pieces, both used on the consumer thread only. ``Backpressure`` decides *whether*
everything pauses: for the buffer ceiling, an outage, a halt (the source adds its own
stop); it is pure (the tracker's held count and ``RunState``'s reasons in, a bool out)
and logs each pause and resume with its reason. ``PartitionPauses`` keeps the
consumer's per-partition state in step with that decision, or, without a global
pause, with the partitions the offset tracker holds back (read
``delivery.max_run_ahead`` past their commit point), calling ``pause``/``resume`` only
for partitions whose state changes, and says when the run-ahead bound holds a
partition back and frees it.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTP

from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.run_state import RunState

__all__ = ["Backpressure", "PartitionPauses"]

log = logging.getLogger("connector.source.kafka_source")  # the source's lines, as before the split

RESUME_FRACTION = 0.5  # resume once held records fall to half the ceiling
CEILING = "delivery.max_buffered_records reached"  # the pause reason of plain back-pressure


class Backpressure:
    """The global pause: all partitions while the records held (read, no outcome yet)
    reach ``ceiling`` or delivery cannot make progress (``RunState.pause_reason``),
    until held records fall to half the ceiling and that cleared.

    ``KafkaSource`` asks ``decide`` once per round and calls ``pause`` while settle
    waits out a dependency, both on the consumer thread. Logs one line per reason: at
    warning when delivery is blocked, at info for the ceiling (normal under load).
    Raises nothing; it touches no consumer (``PartitionPauses`` applies the answer)."""

    def __init__(self, ceiling: int, tracker: OffsetTracker, state: RunState) -> None:
        self._ceiling = ceiling
        self._tracker = tracker
        self._state = state
        self.paused = False  # the global pause: buffer ceiling, halt, outage, degraded
        self._paused_for: str | None = None  # the reason the last pause line gave
        self._paused_at = 0.0

    def decide(self) -> bool:
        """Pause or resume for this round; True while paused."""
        held = self._tracker.pending
        blocked = self._state.pause_reason
        if held == 0 and self._state.circuit_open and self._state.halted_reason is None:
            # Only a request can close the circuit (its half-open probe), and only a held
            # record makes one: with none held (a revoke took them all) reading stays on,
            # or the pause would wait for a probe that is never sent.
            blocked = self._state.degraded_reason
        if blocked is not None or (not self.paused and held >= self._ceiling):
            self.pause(blocked or CEILING)
        elif self.paused and held <= self._ceiling * RESUME_FRACTION:
            self._resume()
        return self.paused

    def pause(self, why: str) -> None:
        """Pause for ``why``; one line per reason, so a pause at the buffer ceiling that
        becomes an outage says so."""
        self.paused = True
        if why != self._paused_for:
            level = logging.INFO if why == CEILING else logging.WARNING
            log.log(level, "paused consumption: %s (%d records held)", why, self._tracker.pending)
            if self._paused_for is None:
                self._paused_at = time.monotonic()
            self._paused_for = why

    def _resume(self) -> None:
        self.paused = False
        if self._paused_for is not None:
            level = logging.INFO if self._paused_for == CEILING else logging.WARNING
            log.log(level, "resumed consumption after %.1fs paused (%s; %d records held)",
                    time.monotonic() - self._paused_at, self._paused_for,
                    self._tracker.pending)  # fmt: skip
            self._paused_for = None


class PartitionPauses:
    """The consumer's pause state per partition, as this side last set it."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._paused: dict[TopicPartition, bool] = {}  # as the consumer has it
        self._held_back: set[TopicPartition] = set()  # paused by the run-ahead bound

    def apply(
        self, assigned: set[TopicPartition], held_back: set[TopicPartition], *, everything: bool
    ) -> None:
        """Pause every assigned partition (``everything``) or just ``held_back``; resume
        the rest. A partition whose state is unknown (``forget``) is set once."""
        if held_back != self._held_back:
            self._log_held_back(assigned, held_back)
        wanted = assigned if everything else held_back
        pause = [tp for tp in assigned if tp in wanted and self._paused.get(tp) is not True]
        resume = [tp for tp in assigned if tp not in wanted and self._paused.get(tp) is not False]
        if pause:
            self._consumer.pause([KafkaTP(t, p) for t, p in pause])
        if resume:
            self._consumer.resume([KafkaTP(t, p) for t, p in resume])
        for tp in pause:
            self._paused[tp] = True
        for tp in resume:
            self._paused[tp] = False

    def forget(self, tp: TopicPartition) -> None:
        """Assigned anew or revoked: librdkafka may keep an old pause across a revoke."""
        self._paused.pop(tp, None)

    def _log_held_back(self, assigned: set[TopicPartition], held_back: set[TopicPartition]) -> None:
        newly = held_back - self._held_back
        freed = (self._held_back - held_back) & assigned  # not revoked meanwhile
        if newly:
            log.warning("paused %s: read delivery.max_run_ahead offsets past the commit "
                        "point; the oldest record without an outcome holds it back",
                        _names(newly))  # fmt: skip
        if freed:
            log.warning("resumed %s: the commit point moved", _names(freed))
        self._held_back = held_back


def _names(tps: set[TopicPartition]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(tps))
