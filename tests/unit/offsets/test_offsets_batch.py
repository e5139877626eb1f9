"""``admit_many`` answers what ``admit`` would, record by record; ``epoch`` reads unlocked."""

from __future__ import annotations

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from connector.offsets.tracker import ALREADY_FINISHED, NOT_OURS, OffsetTracker

TP = ("clicks", 0)
OTHER = ("clicks", 1)
GONE = ("clicks", 2)


def _pair(max_ahead: int | None) -> tuple[OffsetTracker, OffsetTracker]:
    trackers = OffsetTracker(max_ahead), OffsetTracker(max_ahead)
    for tracker in trackers:
        tracker.assign(TP, committed=5, finished=[7, 9, 30])
        tracker.assign(OTHER)
    return trackers


@given(
    batch=st.lists(
        st.tuples(st.sampled_from([TP, OTHER, GONE]), st.integers(0, 40)), max_size=30
    ).map(
        # offsets rise per partition, as a consumed batch has them
        lambda pairs: [(tp, offset + 40 * i) for i, (tp, offset) in enumerate(sorted(pairs))]
    ),
    max_ahead=st.sampled_from([None, 8, 64]),
)
def test_admit_many_answers_and_state_match_admit_one_by_one(
    batch: list[tuple[tuple[str, int], int]], max_ahead: int | None
) -> None:
    one, many = _pair(max_ahead)
    expected = [one.admit(tp, offset) for tp, offset in batch]

    assert many.admit_many(batch) == expected
    assert many.pending == one.pending
    assert many.to_commit(unchanged=True) == one.to_commit(unchanged=True)
    assert many.blocked_partitions() == one.blocked_partitions()


def test_admit_many_says_not_ours_and_already_finished_in_place() -> None:
    tracker = OffsetTracker()
    epoch = tracker.assign(TP, committed=5, finished=[6])

    answers = tracker.admit_many([(TP, 5), (GONE, 1), (TP, 6), (TP, 7)])

    assert answers == [epoch, NOT_OURS, ALREADY_FINISHED, epoch]
    assert tracker.pending == 2  # 5 and 7 are held; 6 counts as finished
    tracker.finish(TP, 5, epoch)
    tracker.finish(TP, 7, epoch)
    assert tracker.to_commit()[TP].offset == 8


def test_admit_many_of_nothing_changes_nothing() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)

    assert tracker.admit_many([]) == []
    assert tracker.pending == 0
    assert tracker.to_commit() == {}


def test_epoch_follows_assign_and_revoke() -> None:
    tracker = OffsetTracker()
    assert tracker.epoch(TP) is None
    first = tracker.assign(TP)
    assert tracker.epoch(TP) == first
    second = tracker.assign(TP)
    assert tracker.epoch(TP) == second != first
    tracker.revoke(TP)
    assert tracker.epoch(TP) is None


def test_epoch_read_while_another_thread_reassigns_is_always_a_real_epoch() -> None:
    # epoch() takes no lock: every answer must still be None or an epoch assign handed out.
    tracker = OffsetTracker()
    handed_out = {tracker.assign(TP)}
    seen: set[int | None] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(tracker.epoch(TP))

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 5
    while len(seen) < 10 and time.monotonic() < deadline:
        handed_out.add(tracker.assign(TP))
        tracker.revoke(TP)
    stop.set()
    thread.join()

    assert seen <= handed_out | {None}
    assert len(seen) >= 10  # the reader really ran beside the writer
