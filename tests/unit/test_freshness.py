"""Event age and time lag (connector.freshness), with a hand-moved clock: no services."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NOT_AVAILABLE,
)
from prometheus_client import CollectorRegistry

from connector.freshness import EventAges, TimeLag
from connector.observability import Metrics
from connector.offsets.tracker import OffsetTracker
from connector.records import Work

TP = ("clicks", 0)
NOW = 1_800_000_000.0  # wall clock of the tests, seconds


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Msg:
    """What TimeLag.read reads of a consumed message."""

    def __init__(self, offset: int, ts_ms: int, tp: tuple[str, int] = TP, kind: int = 1) -> None:
        self._tp, self._offset, self._ts, self._kind = tp, offset, ts_ms, kind

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._tp[0]

    def partition(self) -> int:
        return self._tp[1]

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (TIMESTAMP_NOT_AVAILABLE, -1) if self._ts < 0 else (self._kind, self._ts)


def work(ts_ms: int, topic: str = "clicks") -> Work:
    return Work((topic, 0), 0, 1, None, None, None, "k", (), timestamp=ts_ms)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def test_event_age_is_answer_time_minus_the_kafka_timestamp_per_topic() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    ages = EventAges("cdp_connector", clock)
    registry.register(ages)
    for age, topic in [(0.004, "clicks"), (0.2, "clicks"), (7.0, "clicks"), (0.004, "orders")]:
        ages.delivered(work(ms(NOW - age), topic))
    hist = "cdp_connector_event_age_seconds"

    def value(suffix: str, topic: str = "clicks", **labels: str) -> float | None:
        return registry.get_sample_value(f"{hist}_{suffix}", {"topic": topic, **labels})

    assert value("bucket", le="0.005") == 1
    assert value("bucket", le="0.25") == 2
    assert value("bucket", le="10.0") == 3
    assert value("bucket", le="3600.0") == 3
    assert value("count") == 3
    assert abs((value("sum") or 0) - 7.204) < 0.002
    assert value("count", "orders") == 1


def test_the_metrics_hear_each_delivered_event() -> None:
    metrics = Metrics("test")
    metrics.event_delivered(work(ms(time.time() - 1.0)))
    count = sample(metrics, "cdp_connector_event_age_seconds_count", topic="clicks")
    assert count == 1


def test_no_timestamp_and_clock_skew_are_counted_apart_not_in_the_histogram() -> None:
    clock = Clock()
    ages = EventAges("cdp_connector", clock)
    ages.delivered(work(-1))  # a record without a timestamp
    ages.delivered(work(ms(NOW + 2.0)))  # produced "2 s from now": the producer's clock
    ages.delivered(work(ms(NOW - 0.01)))
    assert ages.unknown == {("clicks", "no_timestamp"): 1, ("clicks", "future"): 1}
    assert sum(ages.topics["clicks"].buckets) == 1


@pytest.mark.parametrize("kind", [TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME])
def test_time_lag_is_the_age_of_the_oldest_record_held_then_zero_once_finished(kind: int) -> None:
    clock = Clock()
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    lag = TimeLag("cdp_connector", tracker.heads, clock)
    batch = [Msg(o, ms(NOW - 3.0 + o), kind=kind) for o in range(3)]
    tracker.admit_many([(TP, m.offset()) for m in batch])
    lag.read(batch)
    clock.now += 5.0  # CDP down: nothing finishes, the lag grows with the clock
    assert lag.seconds() == {TP: 8.0}
    tracker.finish(TP, 0, epoch)
    assert lag.seconds() == {TP: 7.0}  # offset 1 is the oldest held now
    tracker.finish(TP, 2, epoch)
    assert lag.seconds() == {TP: 7.0}  # a later one finishing moves nothing
    tracker.finish(TP, 1, epoch)
    assert lag.seconds() == {TP: 0.0}  # caught up


def test_a_record_without_a_timestamp_or_from_the_future_counts_from_when_it_was_read() -> None:
    clock = Clock()
    tracker = OffsetTracker()
    tracker.assign(TP)
    lag = TimeLag("cdp_connector", tracker.heads, clock)
    batch = [Msg(0, -1), Msg(1, ms(NOW + 60.0))]
    tracker.admit_many([(TP, 0), (TP, 1)])
    lag.read(batch)
    clock.now += 2.0
    assert lag.seconds() == {TP: 2.0}


def test_with_nothing_held_but_records_at_the_broker_it_is_the_time_since_the_last_read() -> None:
    clock = Clock()
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    lag = TimeLag("cdp_connector", tracker.heads, clock)
    tracker.admit_many([(TP, 0)])
    lag.read([Msg(0, ms(NOW - 0.5))])
    tracker.finish(TP, 0, epoch)
    stats = {"topics": {"clicks": {"partitions": {
        "0": {"fetch_state": "active", "hi_offset": 40, "ls_offset": 40, "app_offset": 1},
        "-1": {"fetch_state": "none"},
    }}}}  # fmt: skip
    lag.from_stats(stats)  # 39 records wait at the broker: a paused partition
    clock.now += 4.0
    assert lag.seconds() == {TP: 4.0}
    stats["topics"]["clicks"]["partitions"]["0"]["app_offset"] = 40
    lag.from_stats(stats)  # everything handed over
    assert lag.seconds() == {TP: 0.0}


def test_only_assigned_partitions_have_a_time_lag_and_what_is_kept_stays_bounded() -> None:
    clock = Clock()
    tracker = OffsetTracker()
    epoch = tracker.assign(TP)
    other = ("clicks", 1)
    tracker.assign(other)
    lag = TimeLag("cdp_connector", tracker.heads, clock)
    for offset in range(1000):  # one record per batch, each finished before the next
        tracker.admit_many([(TP, offset)])
        lag.read([Msg(offset, ms(NOW))])
        tracker.finish(TP, offset, epoch)
    assert len(lag._partitions[TP].read) == 1  # the last batch only, never the history
    assert lag.seconds() == {TP: 0.0, other: 0.0}
    tracker.revoke(other)
    assert lag.seconds() == {TP: 0.0}
    assert other not in lag._partitions


def test_the_metrics_export_the_time_lag_per_partition() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    metrics = Metrics("test")
    lag = metrics.track_time_lag(tracker.heads)
    tracker.admit_many([(TP, 5)])
    lag.read([Msg(5, ms(time.time() - 10.0))])  # the real clock here
    exported = sample(metrics, "cdp_connector_time_lag_seconds", topic="clicks", partition="0")
    assert exported is not None and 9.99 <= exported < 60.0
