"""The consumer thread's decisions, with a fake consumer: back-pressure, rebalances,
commits, shutdown. The thread itself is not started; each test drives ``step``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from connector.kafka.commits import RETRY_PAUSES, Committer, commit_metadata, committed_offsets
from connector.kafka.errors import message_error
from connector.offsets.metadata import encode
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import lane_rule
from connector.run_state import RunState
from connector.settle.stage import Settle
from connector.source.kafka_source import KafkaSource
from connector.source.settings import SourceSettings
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

    def __init__(
        self,
        ceiling: int = 10,
        *,
        max_ahead: int | None = None,
        group: dict[TopicPartition, tuple[int, str]] | None = None,
        handoff: Callable[[OffsetTracker, RunState], Any] | None = None,
        drain: float = 0.2,
    ) -> None:
        self.tracker = OffsetTracker(max_ahead=max_ahead)
        self.state = RunState()
        self.handoff = FakeHandoff()
        dlq: Any = FakeDeadLetters()
        self.committer = Committer(self.tracker, self.state, commit_metadata("test"))
        settle = Settle(one_event, lane_rule("key"), self.tracker, dlq, self.state, lambda _d: True)
        self.consumer: FakeConsumer | None = None
        self.finished_before: list[int] = []

        def make_consumer(own: dict[str, Any]) -> Any:
            self.consumer = FakeConsumer(own)
            if group is not None:
                self.consumer.group = group  # the group coordinator's committed offsets
            return self.consumer

        self.source = KafkaSource(
            SourceSettings.of(settings(drain, max_buffered_records=ceiling)),
            make_consumer,
            settle,
            self.tracker,
            dlq,
            handoff(self.tracker, self.state) if handoff else self.handoff,
            self.committer,
            self.state,
            on_finished_before=self.finished_before.append,
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
    rig.read(P0, range(1))
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


def test_a_revoke_of_every_held_record_while_the_circuit_is_open_does_not_pause_for_good() -> None:
    """The circuit closes only on its half-open probe, a request for a held record: when
    a revoke takes every held record, reading goes on so that a new one can probe."""
    rig = Rig()
    rig.kafka.assign(P0, P1)
    rig.read(P0, range(3))  # P1 has nothing held
    rig.state.open_circuit("20 consecutive retryable failures, the last HTTP 503: outage")
    rig.source.step()
    assert rig.kafka.paused == {P0, P1}
    rig.kafka.revoke(P0)  # its records go to the new owner: none held here
    rig.source.step()
    assert P1 not in rig.kafka.paused  # its next record can be the probe
    rig.kafka.assign(P0)  # handed back while the circuit is still open
    rig.read(P1, range(2))
    rig.source.step()
    assert rig.kafka.paused == {P0, P1}  # a record can probe now: paused again
    rig.finish(P1, 0, 1)  # the probe got through; the circuit closes
    rig.state.close_circuit()
    rig.source.step()
    assert rig.kafka.paused == set()


def pause_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "connector.source.kafka_source" and "consumption" in r.getMessage()
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


# -- finished offsets in the commit metadata ------------------------------------------


def test_commit_metadata_carries_the_finished_offsets_and_a_new_owner_reads_them_back() -> None:
    old = Rig()
    old.kafka.assign(P0)
    old.read(P0, range(6))
    old.finish(P0, 0, 1, 3, 4)  # 2 and 5 still in flight
    old.kafka.revoke(P0)
    offset, metadata = old.kafka.group[P0]
    assert offset == 2
    assert metadata.startswith(commit_metadata("test") + " done:")
    new = Rig(group=old.kafka.group)  # another replica of the group
    new.kafka.assign(P0)
    new.read(P0, range(2, 6))
    assert [w.offset for w in new.handoff.works] == [2, 5]  # 3 and 4 are not posted again
    assert new.finished_before == [2]
    new.finish(P0, 2, 5)
    new.source.shutdown()
    assert new.kafka.group[P0] == (6, commit_metadata("test"))  # nothing above: no field


def test_commits_follow_progress_only() -> None:
    rig = Rig()
    rig.kafka.assign(P0)
    rig.read(P0, range(4))
    rig.finish(P0, 2)  # commit point unchanged, finished set changed
    rig.committer.commit(rig.source._consumer, asynchronous=True)
    rig.committer.commit(rig.source._consumer, asynchronous=True)  # nothing moved
    rig.finish(P0, 0)
    rig.committer.commit(rig.source._consumer, asynchronous=True)
    assert rig.kafka.commits == [({P0: 0}, True), ({P0: 1}, True)]


def test_a_commit_falling_due_while_a_batch_is_settled_goes_out_before_the_rest_of_it() -> None:
    """A young process reads its backlog in full batches, each 0.1-0.4 s of decoding
    and mapping on a busy machine: the periodic commit must not wait for the batch."""
    rig = Rig(ceiling=20)
    rig.kafka.assign(P0)
    rig.read(P0, range(2))
    rig.finish(P0, 0)
    settle = rig.source._settle
    take = settle.take
    commits_seen: list[int] = []

    def slow_take(*args: Any) -> Any:
        time.sleep(0.02)  # the decode and mapping of one record on a busy machine
        commits_seen.append(len(rig.kafka.commits))
        return take(*args)

    settle.take = slow_take  # type: ignore[method-assign]
    rig.source._next_commit = time.monotonic() + 0.05
    rig.read(P0, range(2, 12))  # ten records: 0.2 s to settle
    assert rig.kafka.commits[0] == ({P0: 1}, True)
    assert commits_seen[-1] == 1, commits_seen  # committed before the batch's last record
    assert commits_seen[0] == 0


@pytest.mark.parametrize("broken", ["unreadable", "lookup fails"])
def test_metadata_it_cannot_read_is_a_warning_and_the_records_are_posted(
    broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(group={P0: (2, commit_metadata("test") + " done:%%%")})
    if broken == "lookup fails":

        def committed(partitions: list[KafkaTP], timeout: float = -1) -> list[KafkaTP]:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

        rig.kafka.committed = committed  # type: ignore[method-assign]
    with caplog.at_level("WARNING"):
        rig.kafka.assign(P0)
    rig.read(P0, range(2, 5))
    assert [w.offset for w in rig.handoff.works] == [2, 3, 4]
    assert rig.finished_before == []
    assert any(r.levelname == "WARNING" for r in caplog.records)


# -- per-partition back-pressure --------------------------------------------------------


def test_a_partition_too_far_ahead_pauses_alone_and_resumes_when_its_commit_point_moves() -> None:
    rig = Rig(ceiling=1000, max_ahead=10)
    rig.kafka.assign(P0, P1)
    rig.read(P0, range(10))  # ten offsets past the commit point
    rig.read(P1, range(3))
    assert rig.kafka.paused == {P0}
    assert not rig.source.paused  # the global pause is not involved
    rig.finish(P0, 0, 1, 2, 3)  # 6 ahead: above half of the limit
    rig.source.step()
    assert rig.kafka.paused == {P0}
    rig.finish(P0, 4)  # 5 ahead: half
    rig.source.step()
    assert rig.kafka.paused == set()


def test_a_partition_held_back_by_the_run_ahead_bound_says_so_and_when_it_is_freed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rig = Rig(ceiling=1000, max_ahead=10)
    rig.kafka.assign(P0, P1)
    rig.read(P0, range(10))
    rig.source.step()
    rig.source.step()  # still held back: no second line
    rig.finish(P0, 0, 1, 2, 3, 4)
    rig.source.step()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "[0]" in r.getMessage()]
    lines = [line for line in lines if not line[1].startswith("assigned")]
    assert lines == [
        ("WARNING", "paused clicks[0]: read delivery.max_run_ahead offsets past the commit "
                    "point; the oldest record without an outcome holds it back"),
        ("WARNING", "resumed clicks[0]: the commit point moved"),
    ]  # fmt: skip


def test_the_global_pause_and_a_partition_pause_keep_their_own_bookkeeping() -> None:
    rig = Rig(ceiling=12, max_ahead=10)
    rig.kafka.assign(P0, P1)
    rig.read(P0, range(10))
    rig.read(P1, range(2))  # 12 held: the ceiling
    rig.source.step()
    assert rig.source.paused
    assert rig.kafka.paused == {P0, P1}
    rig.finish(P1, 0, 1)
    rig.finish(P0, 0, 1, 2, 3)  # 6 held: half the ceiling; P0 still too far ahead
    rig.source.step()
    assert not rig.source.paused
    assert rig.kafka.paused == {P0}
    rig.finish(P0, 4)
    rig.source.step()
    assert rig.kafka.paused == set()


def test_a_partition_assigned_again_gets_its_pause_state_set_once() -> None:
    rig = Rig(ceiling=1000, max_ahead=10)
    rig.kafka.assign(P0)
    rig.read(P0, range(10))
    rig.source.step()
    assert rig.kafka.paused == {P0}
    rig.kafka.revoke(P0)  # librdkafka keeps the application's pause across a revoke
    assignments = rig.state.assignments
    rig.kafka.assign(P0)
    rig.source.step()
    assert rig.kafka.paused == set()
    assert rig.state.assignments == assignments + 1  # browser ids catch up after it
    calls = len(rig.kafka.pause_calls)
    rig.source.step()
    assert len(rig.kafka.pause_calls) == calls  # not paused or resumed again every round


# -- fencing ------------------------------------------------------------------------------


def test_a_fenced_member_stops_posting_everything_at_once_and_fails() -> None:
    rig = Rig()
    rig.kafka.assign(P0, P1)
    rig.read(P0, range(3))
    rig.finish(P0, 0)
    rig.kafka.fatal = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True)
    rig.source.step()  # confluent-kafka raises the fatal error from consume()
    assert rig.state.fatal_exit is not None
    assert "fenced" in rig.state.fatal_exit
    assert "group.instance.id" in rig.state.fatal_exit
    rig.source.shutdown()
    assert rig.handoff.released == [{P0, P1}]
    assert rig.handoff.timeouts == [0]  # not waited for: the new owner is posting already
    assert rig.handoff.stopped  # requests still open are cancelled
    assert rig.kafka.commits == []


def test_a_fence_handed_over_as_a_message_error_fails_the_run_too() -> None:
    # librdkafka's fatal error reaches consume() as a message error coded _FATAL.
    state = RunState()
    why = (
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id"
    )
    message_error(state, KafkaError(KafkaError._FATAL, why))
    assert state.fatal_exit is not None
    assert state.fatal_exit.startswith("fenced: another consumer joined the group")


# -- reading the committed offsets back --------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._TIMED_OUT],
)
def test_a_coordinator_moving_or_loading_is_asked_again_before_the_read_back_gives_up(
    code: int,
) -> None:
    rig = Rig(group={P0: (2, encode(commit_metadata("test"), 2, [3]).text)})
    answer = rig.kafka.committed
    asked: list[float] = []

    def committed(partitions: list[KafkaTP], timeout: float = -1) -> list[KafkaTP]:
        asked.append(timeout)
        if len(asked) == 1:
            raise KafkaException(KafkaError(code))
        return answer(partitions, timeout)

    rig.kafka.committed = committed  # type: ignore[method-assign]
    rig.kafka.assign(P0)
    rig.read(P0, range(2, 5))
    assert len(asked) == 2
    assert all(0 < t <= 10 for t in asked)  # within the one timeout
    assert [w.offset for w in rig.handoff.works] == [2, 4]  # 3 was finished before
    assert rig.finished_before == [1]


def test_the_read_back_gives_up_at_once_on_other_errors_and_after_a_few_attempts() -> None:
    calls: list[int] = []
    slept: list[float] = []

    class Refusing:
        def __init__(self, code: int) -> None:
            self.code = code

        def committed(self, partitions: list[KafkaTP], timeout: float = -1) -> list[KafkaTP]:
            calls.append(self.code)
            raise KafkaException(KafkaError(self.code))

    wanted = [KafkaTP(*P0)]
    with pytest.raises(KafkaException):
        committed_offsets(Refusing(KafkaError.GROUP_AUTHORIZATION_FAILED), wanted, 10, slept.append)  # type: ignore[arg-type]
    assert len(calls) == 1 and slept == []
    calls.clear()
    with pytest.raises(KafkaException):
        committed_offsets(Refusing(KafkaError.NOT_COORDINATOR), wanted, 10, slept.append)  # type: ignore[arg-type]
    assert len(calls) == len(RETRY_PAUSES) + 1  # bounded
    assert slept == list(RETRY_PAUSES)
