"""Which partitions the consumer has paused, brought in line with what should be.

The source decides *whether* to pause (``KafkaSource._apply_backpressure``): everything
for the buffer ceiling, an outage, a halt or a stop; otherwise only the partitions the
offset tracker holds back (read ``delivery.max_run_ahead`` past their commit point).
This keeps the consumer's per-partition state in step with that decision, calling
``pause``/``resume`` only for partitions whose state changes, and says when the
run-ahead bound holds a partition back and frees it. Called on the consumer thread.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTP

from connector.offsets import TopicPartition

__all__ = ["PartitionPauses"]

log = logging.getLogger("connector.source")  # the source's lines, as before the split


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
