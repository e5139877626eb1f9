"""The run-ahead bound counts from the commit point, not from offset 0, and only a
blocked partition is unblocked; the first assignment's epoch is a real epoch."""

from __future__ import annotations

from connector.offsets.tracker import OffsetTracker

TP = ("clicks", 0)


def test_the_bound_counts_from_the_committed_offset() -> None:
    """A partition committed at 1,000 takes 1,000..1,008 under a bound of 10 (nine
    offsets from its commit point), whatever the absolute offsets are."""
    tracker = OffsetTracker(max_ahead=10)
    tracker.assign(TP, committed=1000)
    for offset in range(1000, 1009):
        tracker.admit(TP, offset)
    assert tracker.accepts(TP)
    tracker.admit(TP, 1009)  # the tenth
    assert not tracker.accepts(TP)


def test_a_finish_does_not_block_a_partition_below_the_bound() -> None:
    """Seven offsets ahead under a bound of 10 is more than half but not the bound: a
    finish there leaves the partition accepting (only a blocked one waits for half)."""
    tracker = OffsetTracker(max_ahead=10)
    epoch = tracker.assign(TP)
    for offset in range(8):
        tracker.admit(TP, offset)
    tracker.finish(TP, 0, epoch)
    assert tracker.accepts(TP)
    assert tracker.blocked_partitions() == set()


def test_add_returns_the_epoch_of_the_first_assignment() -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    assert tracker.add(TP, 0) == epoch


def test_a_restored_record_read_again_moves_the_commit_point_and_is_offered() -> None:
    """Read again after the last commit, a record finished before moves the commit
    point past itself, and that move is committed like any other progress."""
    tracker = OffsetTracker()
    epoch = tracker.assign(TP, committed=100, finished=[101])
    tracker.admit(TP, 100)
    tracker.finish(TP, 100, epoch)
    tracker.mark_committed(tracker.to_commit())
    tracker.admit(TP, 101)  # finished before: counted, not held
    assert tracker.to_commit()[TP].offset == 102
