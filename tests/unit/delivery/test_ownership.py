"""Released partitions: their records at the released epoch are no longer ours."""

from __future__ import annotations

from connector.delivery.ownership import Ownership
from connector.offsets.tracker import OffsetTracker
from connector.records import Work

A, B = ("clicks", 0), ("clicks", 1)


def work(tp: tuple[str, int], epoch: int) -> Work:
    return Work(tp, 0, epoch, None, b"v", None, "lane", ())


def test_releasing_another_partition_keeps_the_first_one_released() -> None:
    tracker = OffsetTracker()
    epoch_a, epoch_b = tracker.assign(A), tracker.assign(B)
    ownership = Ownership(tracker)
    assert ownership.owns(work(A, epoch_a)) and ownership.owns(work(B, epoch_b))
    ownership.release({A})
    ownership.release({B})  # a second handoff (another revoke) while A is not yet forgotten
    assert not ownership.owns(work(A, epoch_a))
    assert not ownership.owns(work(B, epoch_b))


def test_a_partition_assigned_again_is_ours_at_its_new_epoch_only() -> None:
    tracker = OffsetTracker()
    old = tracker.assign(A)
    ownership = Ownership(tracker)
    ownership.release({A})
    tracker.revoke(A)
    new = tracker.assign(A)
    ownership.release({B})  # not assigned: nothing to release
    assert ownership.owns(work(A, new))
    assert not ownership.owns(work(A, old))
