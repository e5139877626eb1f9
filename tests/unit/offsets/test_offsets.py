"""Offsets are committed only up to the first record without an outcome."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from connector.kafka.commits import commit_metadata
from connector.offsets.metadata import decode, encode, run_ahead_limit
from connector.offsets.tracker import ALREADY_FINISHED, CommitState, OffsetTracker
from tests.unit.fake_kafka import commit_points

TP = ("clicks", 0)


def _tracker_with(offsets: list[int]) -> tuple[OffsetTracker, int]:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    for offset in offsets:
        tracker.add(TP, offset)
    return tracker, epoch


def test_offset_not_committed_until_every_earlier_record_finished() -> None:
    tracker, epoch = _tracker_with([10, 11, 12])
    tracker.finish(TP, 11, epoch)
    tracker.finish(TP, 12, epoch)
    assert tracker.to_commit()[TP].offset == 10  # the finished ones only in the metadata
    assert tracker.to_commit()[TP].finished == (11, 12)

    tracker.finish(TP, 10, epoch)
    assert commit_points(tracker) == {TP: 13}
    assert tracker.pending == 0


def test_commit_point_is_next_offset_and_reported_once() -> None:
    tracker, epoch = _tracker_with([0, 1])
    tracker.finish(TP, 0, epoch)
    assert commit_points(tracker) == {TP: 1}
    tracker.mark_committed(tracker.to_commit())
    assert commit_points(tracker) == {}


def test_failed_commit_is_offered_again() -> None:
    tracker, epoch = _tracker_with([0])
    tracker.finish(TP, 0, epoch)
    tracker.mark_committed(tracker.to_commit())
    tracker.forget_committed([TP])
    assert commit_points(tracker) == {TP: 1}


def test_gaps_in_offsets_are_fine() -> None:
    tracker, epoch = _tracker_with([3, 7, 20])
    for offset in (20, 3, 7):
        tracker.finish(TP, offset, epoch)
    assert commit_points(tracker) == {TP: 21}


def test_outcome_from_an_older_assignment_is_ignored() -> None:
    tracker, old_epoch = _tracker_with([5])
    tracker.revoke(TP)
    new_epoch = tracker.assign(TP)
    assert tracker.add(TP, 5) == new_epoch
    assert tracker.add(("other", 0), 1) is None  # not assigned: not held

    tracker.finish(TP, 5, old_epoch)
    assert commit_points(tracker) == {}
    assert tracker.pending == 1
    tracker.finish(TP, 5, new_epoch)
    assert commit_points(tracker) == {TP: 6}


def test_revoke_releases_pending_count() -> None:
    tracker, _ = _tracker_with([1, 2, 3])
    assert tracker.pending == 3
    tracker.revoke(TP)
    assert tracker.pending == 0


def test_duplicate_outcomes_count_once() -> None:
    tracker, epoch = _tracker_with([1, 2])
    tracker.finish(TP, 2, epoch)
    tracker.finish(TP, 2, epoch)
    assert tracker.pending == 1


def test_wait_drained_wakes_when_other_thread_finishes() -> None:
    tracker, epoch = _tracker_with([1])
    timer = threading.Timer(0.05, tracker.finish, (TP, 1, epoch))
    timer.start()
    assert tracker.wait_drained([TP], timeout=5)
    timer.join()


def test_wait_drained_times_out_when_records_stay_pending() -> None:
    tracker, _ = _tracker_with([1])
    assert not tracker.wait_drained(None, timeout=0.05)


@given(st.permutations(list(range(30))), st.integers(0, 30))
def test_commit_point_never_passes_an_unfinished_record(order: list[int], done: int) -> None:
    tracker, epoch = _tracker_with(list(range(30)))
    finished = set(order[:done])
    for offset in order[:done]:
        tracker.finish(TP, offset, epoch)

    point = commit_points(tracker).get(TP, 0)
    assert all(o in finished for o in range(point))
    assert point == 30 or point not in finished
    assert tracker.pending == 30 - done
    state = tracker.to_commit().get(TP)
    if done:
        assert state is not None
        assert state.offset == point
        assert state.finished == tuple(sorted(o for o in finished if o > point))
    else:
        assert state is None  # no progress, no commit


# -- finished sets that travel with the commit ----------------------------------


def test_to_commit_carries_the_finished_offsets_above_the_commit_point() -> None:
    tracker, epoch = _tracker_with([10, 11, 12, 13])
    tracker.finish(TP, 12, epoch)
    tracker.finish(TP, 13, epoch)
    [(tp, state)] = tracker.to_commit().items()
    assert (tp, state.offset, state.finished) == (TP, 10, (12, 13))

    tracker.finish(TP, 10, epoch)
    assert tracker.to_commit()[TP].offset == 11
    assert tracker.to_commit()[TP].finished == (12, 13)


def test_commits_follow_progress_only() -> None:
    tracker, epoch = _tracker_with([0, 1, 2])
    assert tracker.to_commit() == {}  # nothing finished: nothing new to say
    tracker.finish(TP, 2, epoch)
    tracker.mark_committed(tracker.to_commit())
    assert tracker.to_commit() == {}
    tracker.finish(TP, 1, epoch)  # the finished set changed, the commit point did not
    assert tracker.to_commit()[TP].finished == (1, 2)
    tracker.mark_committed(tracker.to_commit())
    tracker.finish(TP, 0, epoch)
    assert tracker.to_commit()[TP].offset == 3
    tracker.mark_committed(tracker.to_commit())
    assert tracker.to_commit() == {}


def test_failed_commit_of_a_state_is_offered_again() -> None:
    tracker, epoch = _tracker_with([0, 1])
    tracker.finish(TP, 1, epoch)
    tracker.mark_committed(tracker.to_commit())
    tracker.forget_committed([TP])
    assert tracker.to_commit()[TP].finished == (1,)


def test_a_state_from_an_older_assignment_marks_nothing() -> None:
    tracker, epoch = _tracker_with([0])
    tracker.finish(TP, 0, epoch)
    stale = tracker.to_commit()
    tracker.revoke(TP)
    new_epoch = tracker.assign(TP, committed=1)
    tracker.add(TP, 1)
    tracker.finish(TP, 1, new_epoch)
    tracker.mark_committed(stale)
    assert tracker.to_commit()[TP].offset == 2


def test_restored_finished_records_are_recognised_not_held() -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP, committed=100, finished=[101, 103, 104])
    assert tracker.to_commit() == {}  # what Kafka has already

    assert tracker.admit(TP, 100) == epoch
    assert tracker.admit(TP, 101) == ALREADY_FINISHED
    assert tracker.admit(TP, 102) == epoch
    assert tracker.add(TP, 103) is None  # the older call: nothing to do either
    assert tracker.pending == 2
    # Not yet read again, 104 still travels with every commit.
    tracker.finish(TP, 102, epoch)
    assert tracker.to_commit()[TP].finished == (101, 102, 103, 104)

    tracker.finish(TP, 100, epoch)
    assert tracker.to_commit()[TP].offset == 104
    assert tracker.admit(TP, 104) == ALREADY_FINISHED
    assert tracker.to_commit()[TP].offset == 105
    assert tracker.pending == 0


def test_restored_offsets_that_are_gone_from_the_log_are_dropped() -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP, committed=0, finished=[2, 3, 9])
    assert tracker.admit(TP, 5) == epoch  # 0..4 were compacted away
    tracker.finish(TP, 5, epoch)
    assert tracker.to_commit()[TP].offset == 6
    assert tracker.to_commit()[TP].finished == (9,)


def test_a_partition_far_ahead_of_its_commit_point_stops_accepting() -> None:
    tracker = OffsetTracker(max_ahead=10)
    epoch = tracker.assign(TP)
    other = ("clicks", 1)
    tracker.assign(other)
    for offset in range(9):
        tracker.add(TP, offset)
    assert tracker.accepts(TP)
    tracker.add(TP, 9)  # ten offsets from the commit point
    assert not tracker.accepts(TP)
    assert tracker.blocked_partitions() == {TP}
    assert tracker.accepts(other)

    for offset in range(1, 10):  # everything but the stuck record finishes
        tracker.finish(TP, offset, epoch)
    assert not tracker.accepts(TP)  # until the commit point moves
    tracker.finish(TP, 0, epoch)
    assert tracker.accepts(TP)
    assert tracker.blocked_partitions() == set()


def test_blocked_partition_resumes_only_within_half_the_bound() -> None:
    tracker = OffsetTracker(max_ahead=10)
    epoch = tracker.assign(TP)
    for offset in range(10):
        tracker.add(TP, offset)
    for offset in range(4):
        tracker.finish(TP, offset, epoch)
    assert not tracker.accepts(TP)  # 6 offsets ahead: more than half of 10
    tracker.finish(TP, 4, epoch)
    assert tracker.accepts(TP)


def test_metadata_limit_bounds_the_run_ahead_so_every_finished_set_fits() -> None:
    prefix = commit_metadata("pod-1")
    limit = run_ahead_limit(prefix, configured=10**9, batch=500)
    tracker = OffsetTracker(max_ahead=limit)
    epoch = tracker.assign(TP, committed=0)
    offset = 0
    while tracker.accepts(TP):
        for _ in range(500):  # the consumer pauses only after a whole batch
            tracker.add(TP, offset)
            offset += 1
    for o in range(1, offset, 2):  # the worst case: every other record finished
        tracker.finish(TP, o, epoch)
    state = tracker.to_commit()[TP]
    encoded = encode(prefix, state.offset, state.finished)
    assert encoded.complete
    assert decode(encoded.text, state.offset) == state.finished


@given(
    st.permutations(list(range(40))),
    st.integers(0, 40),
    st.sets(st.integers(0, 39)),
    st.integers(1, 40),
)
def test_finished_sets_survive_a_handover(
    order: list[int], done: int, restored: set[int], max_ahead: int
) -> None:
    prefix = commit_metadata("pod-1")
    first = OffsetTracker(max_ahead=max_ahead)
    epoch = first.assign(TP, committed=0, finished=restored)
    held = [o for o in range(40) if first.admit(TP, o) == epoch]
    finished = set(restored) | set(order[:done])
    for offset in order[:done]:
        first.finish(TP, offset, epoch)

    state = first.to_commit().get(TP)
    # No state: nothing changed, and the group still holds what the assignment started from.
    point, carried = (
        (0, tuple(sorted(restored))) if state is None else (state.offset, state.finished)
    )
    assert all(o in finished for o in range(point))
    assert set(carried) == {o for o in finished if o >= point}
    assert first.pending == len([o for o in held if o not in finished])
    if not first.accepts(TP):  # still blocked: more than half the bound ahead
        assert 40 - point > max_ahead // 2

    second = OffsetTracker()
    new_epoch = second.assign(TP, committed=point, finished=decode(
        encode(prefix, point, carried).text, point
    ))  # fmt: skip
    for offset in range(point, 40):
        expected = ALREADY_FINISHED if offset in finished else new_epoch
        assert second.admit(TP, offset) == expected
    assert second.pending == len([o for o in range(40) if o not in finished])


# -- commits acknowledged out of order, partitions not tracked, subsets -----------------------

OTHER = ("clicks", 1)


def test_committed_point_only_moves_forward() -> None:
    tracker, epoch = _tracker_with(list(range(10)))
    for offset in range(3):
        tracker.finish(TP, offset, epoch)
    older = tracker.to_commit()
    assert older[TP].offset == 3
    tracker.mark_committed(older)
    for offset in (3, 4):
        tracker.finish(TP, offset, epoch)
    newer = tracker.to_commit()
    assert newer[TP].offset == 5
    tracker.mark_committed(newer)
    assert tracker.to_commit() == {}  # 5 is committed: nothing new to offer
    tracker.mark_committed(older)  # an older commit acknowledged late
    assert tracker.to_commit() == {}  # still 5, not offered again


def test_marking_or_forgetting_an_untracked_partition_is_a_no_op() -> None:
    tracker, epoch = _tracker_with([0])
    tracker.finish(TP, 0, epoch)
    # OTHER was revoked before its commit was acknowledged (a state of the same epoch
    # and a later version than TP's, so marking it on another partition would show).
    late = CommitState(offset=7, finished=(), epoch=epoch, version=99)
    tracker.mark_committed({OTHER: late})
    tracker.forget_committed([OTHER])
    tracker.revoke(OTHER)
    assert tracker.epoch(OTHER) is None
    assert commit_points(tracker) == {TP: 1}


def test_a_forgotten_commit_can_be_marked_again() -> None:
    tracker, epoch = _tracker_with([0, 1])
    tracker.finish(TP, 0, epoch)
    state = tracker.to_commit()
    tracker.mark_committed(state)
    tracker.forget_committed([TP])
    tracker.mark_committed(state)  # the commit was retried and went through
    assert tracker.to_commit() == {}


def test_assigning_again_without_a_revoke_releases_the_old_pending_count() -> None:
    tracker, epoch = _tracker_with([0, 1, 2])
    tracker.finish(TP, 2, epoch)  # finished but held behind 0 and 1
    assert tracker.pending == 2
    new = tracker.assign(TP)
    assert new != epoch
    assert tracker.pending == 0
    assert tracker.to_commit() == {}


def test_revoke_releases_only_the_unfinished_records() -> None:
    tracker, epoch = _tracker_with([0, 1, 2])
    tracker.finish(TP, 2, epoch)
    tracker.assign(OTHER)
    tracker.add(OTHER, 0)
    tracker.revoke(TP)
    assert tracker.pending == 1  # OTHER's record


def test_late_outcomes_below_the_commit_point_or_for_unread_offsets_are_ignored() -> None:
    tracker, epoch = _tracker_with([5, 6])
    tracker.finish(TP, 5, epoch)
    tracker.finish(TP, 5, epoch)  # again, after the commit point passed it
    tracker.finish(TP, 4, epoch)  # never read in this assignment
    assert tracker.pending == 1
    tracker.finish(TP, 6, epoch)
    tracker.finish(TP, 9, epoch)  # nothing pending at all
    assert (tracker.pending, commit_points(tracker)) == (0, {TP: 7})
    assert tracker.to_commit()[TP].finished == ()  # 4 and 9 are not carried either


def test_to_commit_of_some_partitions_leaves_out_the_others() -> None:
    tracker, epoch = _tracker_with([0])
    other_epoch = tracker.assign(OTHER)
    tracker.add(OTHER, 0)
    tracker.finish(TP, 0, epoch)
    tracker.finish(OTHER, 0, other_epoch)
    assert {tp: s.offset for tp, s in tracker.to_commit([TP]).items()} == {TP: 1}
    some = tracker.to_commit([OTHER, ("gone", 0)])
    assert {tp: s.offset for tp, s in some.items()} == {OTHER: 1}


def test_wait_drained_of_some_partitions_ignores_the_others() -> None:
    tracker, epoch = _tracker_with([0])
    tracker.assign(OTHER)
    tracker.add(OTHER, 0)
    tracker.finish(TP, 0, epoch)
    assert tracker.wait_drained([TP, ("gone", 0)], timeout=0.05)
    assert not tracker.wait_drained([OTHER], timeout=0.05)


def test_wait_drained_with_under_a_second_left_still_waits() -> None:
    tracker, epoch = _tracker_with([1])
    timer = threading.Timer(0.05, tracker.finish, (TP, 1, epoch))
    timer.start()
    assert tracker.wait_drained([TP], timeout=0.9)
    timer.join()
