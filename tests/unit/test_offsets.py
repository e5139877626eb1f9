"""Offsets are committed only up to the first record without an outcome."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from connector.offsets import OffsetTracker

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
    assert tracker.committable() == {}

    tracker.finish(TP, 10, epoch)
    assert tracker.committable() == {TP: 13}
    assert tracker.pending == 0


def test_commit_point_is_next_offset_and_reported_once() -> None:
    tracker, epoch = _tracker_with([0, 1])
    tracker.finish(TP, 0, epoch)
    assert tracker.committable() == {TP: 1}
    tracker.mark_committed({TP: 1})
    assert tracker.committable() == {}


def test_failed_commit_is_offered_again() -> None:
    tracker, epoch = _tracker_with([0])
    tracker.finish(TP, 0, epoch)
    tracker.mark_committed(tracker.committable())
    tracker.forget_committed([TP])
    assert tracker.committable() == {TP: 1}


def test_gaps_in_offsets_are_fine() -> None:
    tracker, epoch = _tracker_with([3, 7, 20])
    for offset in (20, 3, 7):
        tracker.finish(TP, offset, epoch)
    assert tracker.committable() == {TP: 21}


def test_outcome_from_an_older_assignment_is_ignored() -> None:
    tracker, old_epoch = _tracker_with([5])
    tracker.revoke(TP)
    new_epoch = tracker.assign(TP)
    assert tracker.add(TP, 5) == new_epoch
    assert tracker.add(("other", 0), 1) is None  # not assigned: not held

    tracker.finish(TP, 5, old_epoch)
    assert tracker.committable() == {}
    assert tracker.pending == 1
    tracker.finish(TP, 5, new_epoch)
    assert tracker.committable() == {TP: 6}


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

    point = tracker.committable().get(TP, 0)
    assert all(o in finished for o in range(point))
    assert point == 30 or point not in finished
    assert tracker.pending == 30 - done


# -- commits acknowledged out of order, partitions not tracked, subsets -----------------------

OTHER = ("clicks", 1)


def test_committed_point_only_moves_forward() -> None:
    tracker, epoch = _tracker_with(list(range(10)))
    for offset in range(3):
        tracker.finish(TP, offset, epoch)
    tracker.mark_committed({TP: 3})
    for offset in (3, 4):
        tracker.finish(TP, offset, epoch)
    tracker.mark_committed({TP: 5})
    assert tracker.committable() == {}  # 5 is committed: nothing new to offer
    tracker.mark_committed({TP: 3})  # an older commit acknowledged late
    assert tracker.committable() == {}  # still 5, not offered again


def test_marking_or_forgetting_an_untracked_partition_is_a_no_op() -> None:
    tracker, epoch = _tracker_with([0])
    tracker.finish(TP, 0, epoch)
    tracker.mark_committed({OTHER: 7})  # revoked before its commit was acknowledged
    tracker.forget_committed([OTHER])
    tracker.revoke(OTHER)
    assert tracker.epoch(OTHER) is None
    assert tracker.committable() == {TP: 1}


def test_a_forgotten_commit_can_be_marked_again() -> None:
    tracker, epoch = _tracker_with([0, 1])
    tracker.finish(TP, 0, epoch)
    tracker.mark_committed(tracker.committable())
    tracker.forget_committed([TP])
    tracker.mark_committed({TP: 1})
    assert tracker.committable() == {}


def test_assigning_again_without_a_revoke_releases_the_old_pending_count() -> None:
    tracker, epoch = _tracker_with([0, 1, 2])
    tracker.finish(TP, 2, epoch)  # finished but held behind 0 and 1
    assert tracker.pending == 2
    new = tracker.assign(TP)
    assert new != epoch
    assert tracker.pending == 0
    assert tracker.committable() == {}


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
    assert (tracker.pending, tracker.committable()) == (0, {TP: 7})


def test_committable_of_some_partitions_leaves_out_the_others() -> None:
    tracker, epoch = _tracker_with([0])
    other_epoch = tracker.assign(OTHER)
    tracker.add(OTHER, 0)
    tracker.finish(TP, 0, epoch)
    tracker.finish(OTHER, 0, other_epoch)
    assert tracker.committable([TP]) == {TP: 1}
    assert tracker.committable([OTHER, ("gone", 0)]) == {OTHER: 1}


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
