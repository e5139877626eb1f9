"""Rebalances: which partitions this member owns, and what a change of owner does.

librdkafka runs the callbacks inside ``consume``, on the consumer thread;
``KafkaSource`` passes them on here with what only it knows (whether it is stopping,
how long a revoke may wait). On assign, the group's committed offsets and the finished
offsets above them (commit metadata) are read back into the tracker. On revoke,
dispatch releases the partitions, their requests in flight answer (bounded) and their
dead letters are acknowledged before the finished offsets are committed synchronously.
On lost, someone else owns them already: nothing is committed. A failure (a commit, the
committed-offsets read) propagates into ``consume`` and ends the consumer thread.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTP

from connector.kafka.commits import Committer, read_back
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.run_state import RunState
from connector.settle.deadletter import DeadLetterQueue
from connector.source.drain import FLUSH_GRACE, TAKEOVER_HOLD_SECONDS
from connector.source.handoff import Handoff
from connector.source.pausing import PartitionPauses

__all__ = ["Rebalance"]

log = logging.getLogger("connector.source.kafka_source")  # the source's lines, as before the split

# Reading the group's committed offsets on assignment blocks the rebalance callback.
COMMITTED_TIMEOUT = 10.0


class Rebalance:
    """The partitions assigned to this member, kept in step with the tracker, the
    per-partition pauses and ``RunState.assigned``."""

    def __init__(
        self,
        consumer: Consumer,
        tracker: OffsetTracker,
        pauses: PartitionPauses,
        handoff: Handoff,
        deadletter: DeadLetterQueue,
        committer: Committer,
        state: RunState,
        *,
        hold_first: bool,
    ) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._pauses = pauses
        self._handoff = handoff
        self._dlq = deadletter
        self._committer = committer
        self._state = state
        self._hold_first_assignment = hold_first  # a static member (``drain.py``)
        self.assigned: set[TopicPartition] = set()
        self.topics_due = False  # an assignment happened: look the topics up again

    def assign(self, partitions: list[KafkaTP], *, stopping: bool) -> None:
        """Partitions assigned; while ``stopping`` nothing is posted any more, so no
        lookup holds the drain up."""
        if self._hold_first_assignment and not stopping:
            self._hold_first_assignment = False
            time.sleep(TAKEOVER_HOLD_SECONDS)  # a draining predecessor learns of its fence
        committed = {} if stopping else read_back(self._consumer, partitions, COMMITTED_TIMEOUT)
        restored = 0
        for p in partitions:
            tp = (p.topic, p.partition)
            offset, finished = committed.get(tp, (None, ()))
            self._tracker.assign(tp, offset, finished)
            restored += len(finished)
            self.assigned.add(tp)
            self._pauses.forget(tp)  # unknown: the next round sets it
        self._state.assigned = len(self.assigned)
        self._state.assignments += 1
        self._state.broker_down_since = None
        log.info("assigned %s (%d offsets above the commit points finished before)",
                 _names(partitions), restored)  # fmt: skip
        # A rebalance follows a topic's creation. Looked up after consume() returns:
        # list_topics from in here aborted the process (a confluent-kafka CallState
        # assertion) when librdkafka logged during it (kafka.client debug: all).
        self.topics_due = True

    def revoke(self, partitions: list[KafkaTP], wait: float) -> None:
        """Partitions revoked: release them (``wait`` bounds the requests in flight),
        then commit what finished."""
        tps = {(p.topic, p.partition) for p in partitions}
        log.info("revoking %s", _names(partitions))
        self._release(tps, wait)
        self._committer.commit(self._consumer, asynchronous=False, tps=list(tps))
        self._forget(tps)

    def lose(self, partitions: list[KafkaTP]) -> None:
        """Partitions lost: someone else owns them already, committing now could move
        their offsets."""
        tps = {(p.topic, p.partition) for p in partitions}
        log.warning("lost %s without a clean revoke; stopped posting their records",
                    _names(partitions))  # fmt: skip
        self._handoff.release(tps, 0)
        self._forget(tps)

    def _release(self, tps: set[TopicPartition], timeout: float) -> None:
        """Stop dispatching the partitions' records (bounded wait for in-flight ones),
        then wait for their dead-letter acknowledgements."""
        if not self._handoff.release(tps, timeout):
            log.warning("requests of %d revoked partitions still in flight after %.1fs",
                        len(tps), timeout)  # fmt: skip
        self._dlq.flush(max(FLUSH_GRACE, min(timeout, 10.0)))

    def _forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._tracker.revoke(tp)
            self.assigned.discard(tp)
            self._pauses.forget(tp)
        self._state.assigned = len(self.assigned)


def _names(partitions: list[KafkaTP]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
