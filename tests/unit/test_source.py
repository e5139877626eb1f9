"""The consumer thread's decisions, with a fake consumer: back-pressure, rebalances,
commits, shutdown. The thread itself is not started; each test drives ``step``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaTP

from connector.offsets import OffsetTracker
from connector.settle import Settle
from connector.source import Committer, KafkaSource
from connector.state import RunState
from tests.unit.fake_kafka import (
    FakeConsumer,
    FakeDeadLetters,
    FakeHandoff,
    FakeMessage,
    one_event,
    settings,
)

P0 = ("clicks", 0)
P1 = ("clicks", 1)


class Rig:
    """A source wired to fakes, as the pipeline wires it to the real parts."""

    def __init__(self, ceiling: int = 10) -> None:
        self.tracker = OffsetTracker()
        self.state = RunState()
        self.handoff = FakeHandoff()
        dlq: Any = FakeDeadLetters()
        self.committer = Committer(self.tracker, self.state, "test")
        settle = Settle(one_event, "key", self.tracker, dlq, self.state, lambda _d: True)
        self.consumer: FakeConsumer | None = None

        def make_consumer(own: dict[str, Any]) -> Any:
            self.consumer = FakeConsumer(own)
            return self.consumer

        handoff: Any = self.handoff
        self.source = KafkaSource(
            settings(max_buffered_records=ceiling),
            make_consumer,
            settle,
            self.tracker,
            dlq,
            handoff,
            self.committer,
            self.state,
        )
        assert self.consumer is not None
        self.kafka = self.consumer
        self.source._subscribe()

    def read(self, tp: tuple[str, int], offsets: range) -> None:
        """The next consume() returns these records; one step reads them."""
        self.kafka.batches.append([FakeMessage(tp[0], tp[1], o) for o in offsets])
        self.source.step()

    def finish(self, tp: tuple[str, int], *offsets: int) -> None:
        epoch = self.tracker.epoch(tp)
        assert epoch is not None
        for offset in offsets:
            self.tracker.finish(tp, offset, epoch)


def test_pauses_at_the_buffer_ceiling_and_resumes_at_half() -> None:
    rig = Rig(ceiling=10)
    rig.kafka.assign(P0)
    rig.read(P0, range(10))
    assert len(rig.handoff.works) == 10
    rig.source.step()
    assert rig.kafka.paused == {P0}
    assert rig.source.paused
    rig.finish(P0, 0, 1, 2, 3)  # 6 held: above half
    rig.source.step()
    assert rig.kafka.paused == {P0}
    rig.finish(P0, 4)  # 5 held: half the ceiling
    rig.source.step()
    assert rig.kafka.paused == set()
    assert not rig.source.paused


def test_reads_no_more_than_the_room_below_the_ceiling() -> None:
    rig = Rig(ceiling=10)
    rig.kafka.assign(P0)
    rig.read(P0, range(7))
    rig.source.step()
    assert rig.kafka.asked == [10, 3]


def test_revoke_drains_then_commits_only_finished_offsets() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(6))
    rig.finish(P0, 0, 1, 4)
    rig.handoff.on_release = lambda _tps: rig.finish(P0, 2)  # in flight, done while draining
    rig.kafka.revoke(P0)
    assert rig.handoff.released == [{P0}]
    assert rig.kafka.commits == [({P0: 3}, False)]  # 3 and 5 have no outcome
    assert rig.tracker.epoch(P0) is None


def test_failed_commit_is_offered_again() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(3))
    rig.finish(P0, 0, 1, 2)
    rig.committer.commit(rig.source._consumer, asynchronous=True)
    rig.committer.commit(rig.source._consumer, asynchronous=True)
    assert rig.kafka.commits == [({P0: 3}, True)]  # unchanged: not committed twice
    # The broker's answer (served inside consume) says it failed.
    rig.committer.on_committed(KafkaError(KafkaError.REQUEST_TIMED_OUT), [KafkaTP(*P0, 3)])
    rig.committer.commit(rig.source._consumer, asynchronous=True)
    assert rig.kafka.commits == [({P0: 3}, True), ({P0: 3}, True)]


def test_a_commit_that_raises_is_offered_again() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(2))
    rig.finish(P0, 0, 1)
    rig.kafka.fail_commits = True
    rig.committer.commit(rig.source._consumer, asynchronous=False)
    rig.kafka.fail_commits = False
    rig.committer.commit(rig.source._consumer, asynchronous=False)
    assert rig.kafka.commits == [({P0: 2}, False)]


def test_late_outcomes_of_a_revoked_partition_are_ignored() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(3))
    old = list(rig.handoff.works)
    rig.kafka.revoke(P0)  # nothing finished: nothing to commit
    rig.kafka.assign(P0)  # ours again, a new epoch; the records will be read again
    rig.read(P0, range(3))
    for work in old:  # the first owner's in-flight requests answer now
        rig.tracker.finish(work.tp, work.offset, work.epoch)
    assert rig.tracker.pending == 3
    rig.source.shutdown()
    assert rig.kafka.commits == []


def test_assignment_while_paused_keeps_new_partitions_in_step() -> None:
    rig = Rig(ceiling=4)
    rig.kafka.assign(P0)
    rig.read(P0, range(4))
    rig.source.step()
    assert rig.kafka.paused == {P0}
    rig.kafka.assign(P1)  # arrives resumed
    rig.source.step()
    assert rig.kafka.paused == {P0, P1}


def test_a_partition_handed_back_while_paused_leaves_no_partition_paused_for_good() -> None:
    rig = Rig(ceiling=4)
    rig.kafka.assign(P0)
    rig.kafka.assign(P1)
    rig.read(P0, range(3))
    rig.read(P1, range(1))
    rig.source.step()
    assert rig.kafka.paused == {P0, P1}  # at the ceiling
    rig.kafka.revoke(P1)  # its held record is forgotten: 3 held, still above half
    rig.kafka.assign(P1)
    rig.source.step()
    assert rig.kafka.paused == {P0, P1}  # still above half: everything stays paused
    rig.finish(P0, 0, 1)
    rig.source.step()
    assert rig.kafka.paused == set()  # at half: every partition resumes, P0 included


def test_shutdown_commits_what_finished_and_leaves() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(4))
    rig.finish(P0, 0, 1, 3)
    rig.source.shutdown()
    assert rig.kafka.commits == [({P0: 2}, False)]
    assert rig.kafka.closed
    assert rig.state.stopping


def test_nothing_is_committed_after_a_fatal_failure() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(2))
    rig.finish(P0, 0, 1)
    rig.state.fail("dead-letter write failed")
    rig.source.shutdown()
    assert rig.kafka.commits == []
    assert rig.kafka.closed


@pytest.mark.parametrize("halt", ["halted", "circuit"])
def test_pauses_while_delivery_cannot_progress(halt: str) -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    if halt == "halted":
        rig.state.halt("401")
    else:
        rig.state.circuit_open = True
    rig.source.step()
    assert rig.kafka.paused == {P0}
    rig.state.resume()
    rig.state.circuit_open = False
    rig.source.step()
    assert rig.kafka.paused == set()


def pause_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "connector.source" and "consumption" in r.getMessage()
    ]


def test_pause_and_resume_say_why_at_warning_when_delivery_is_blocked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(3))
    rig.state.open_circuit("5 consecutive retryable failures, the last HTTP 503: outage")
    rig.source.step()
    rig.source.step()  # still paused: no second line
    rig.state.close_circuit()
    rig.source.step()
    [(level, paused), (level2, resumed)] = pause_lines(caplog)
    assert (level, level2) == ("WARNING", "WARNING")
    assert paused == (
        "paused consumption: CDP circuit open: 5 consecutive retryable failures, "
        "the last HTTP 503: outage (3 records held)"
    )
    assert resumed.startswith("resumed consumption after ")
    assert "paused (CDP circuit open: 5 consecutive" in resumed


def test_pause_at_the_buffer_ceiling_is_back_pressure_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rig = Rig(ceiling=4)
    rig.kafka.assign(P0)
    rig.read(P0, range(4))
    rig.source.step()
    rig.finish(P0, 0, 1, 2)
    rig.source.step()
    [(level, paused), (level2, resumed)] = pause_lines(caplog)
    assert (level, level2) == ("INFO", "INFO")
    assert paused == "paused consumption: delivery.max_buffered_records reached (4 records held)"
    assert resumed.endswith("paused (delivery.max_buffered_records reached; 1 records held)")


def test_a_missing_topic_is_not_ready_until_an_assignment_finds_it() -> None:
    rig = Rig()
    rig.kafka.topics = set()  # the cluster has no such topic
    rig.source._subscribe()
    assert rig.state.missing_topics == ("clicks",)
    assert not rig.state.readiness()[0]
    rig.kafka.topics = None  # created: the rebalance that follows assigns it
    rig.kafka.assign(P0)  # inside consume(): no lookup from in there
    assert rig.state.missing_topics == ("clicks",)
    rig.source.step()
    assert rig.state.missing_topics == ()
    assert rig.state.readiness()[0]


def test_a_pause_at_the_ceiling_that_becomes_an_outage_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rig = Rig(ceiling=4)
    rig.kafka.assign(P0)
    rig.read(P0, range(4))
    rig.source.step()  # paused at the ceiling
    rig.state.halt("CDP refused the credentials")
    rig.source.step()
    rig.source.step()
    rig.state.resume()
    rig.finish(P0, 0, 1, 2, 3)
    rig.source.step()
    lines = [message for _, message in pause_lines(caplog)]
    assert len(lines) == 3, lines
    assert lines[0].startswith("paused consumption: delivery.max_buffered_records reached")
    assert lines[1] == (
        "paused consumption: delivery halted: CDP refused the credentials (4 records held)"
    )
    assert lines[2].endswith("(delivery halted: CDP refused the credentials; 0 records held)")
    assert rig.kafka.paused == set()
