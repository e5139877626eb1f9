"""Freshness: how old the data is, in seconds, besides how many records behind.

Two measures (names and how they relate to offset lag: docs/operations.md, "Freshness"):

1. ``cdp_connector_event_age_seconds{topic}``: per delivered event, the time of the
   CDP's answer minus the record's Kafka timestamp (the producer's CreateTime or the
   broker's LogAppendTime, whichever the topic keeps; both are wall-clock ms). A record
   without a timestamp, or with one later than the answer (clock skew between the
   producer and this host), is counted in ``cdp_connector_event_age_unknown_total``
   by ``reason`` (``no_timestamp``, ``future``), not put in the histogram.
   ``EventAges`` keeps the numbers; only the event loop changes them.
2. ``cdp_connector_time_lag_seconds{topic,partition}``, per assigned partition, at
   scrape time (``TimeLag``):
   - records held without an outcome: the age of the oldest (now minus its Kafka
     timestamp, or minus when it was read when the timestamp is missing or later);
   - none held but records wait at the broker (the statistics' end offset is past the
     offset the application was handed last: a paused partition, a leader that
     moved, a stalled fetch): the time since the partition last returned records;
   - else 0 (caught up).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from connector.offsets.tracker import TopicPartition
from connector.records import Work

__all__ = ["AGE_BUCKETS", "EventAges", "TimeLag"]

#: From a millisecond to an hour: a healthy connector answers within tens of ms of the
#: produce; an outage or a backlog moves events into the seconds-to-hours buckets.
AGE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 1800.0, 3600.0,
)  # fmt: skip
_BOUNDS = (*(repr(b) for b in AGE_BUCKETS), "+Inf")


class _TopicAges:
    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(AGE_BUCKETS) + 1)  # the last is +Inf
        self.sum = 0.0
        self.created = time.time()


class EventAges:
    """The age histogram and the unknown-age counter, as plain numbers exported at scrape.

    ``delivered`` is called by the dispatcher's observer on the event loop once per
    delivered event, right after the CDP's answer (``clock``: wall time, injectable)."""

    def __init__(self, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._prefix = prefix
        self._clock = clock
        self.topics: dict[str, _TopicAges] = {}
        self.unknown: dict[tuple[str, str], int] = {}  # (topic, reason) → count
        self.unknown_created: dict[tuple[str, str], float] = {}

    def delivered(self, work: Work) -> None:
        topic = work.tp[0]
        if work.timestamp < 0:
            self._unknown(topic, "no_timestamp")
            return
        age = self._clock() - work.timestamp / 1000
        if age < 0:
            self._unknown(topic, "future")
            return
        ages = self.topics.get(topic)
        if ages is None:
            ages = self.topics[topic] = _TopicAges()
        ages.buckets[bisect_left(AGE_BUCKETS, age)] += 1
        ages.sum += age

    def _unknown(self, topic: str, reason: str) -> None:
        key = (topic, reason)
        if key not in self.unknown:
            self.unknown_created[key] = time.time()
        self.unknown[key] = self.unknown.get(key, 0) + 1

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        name = f"{self._prefix}_event_age_seconds"
        hist = HistogramMetricFamily(
            name,
            "Age of a delivered event: the CDP's answer time minus the record's Kafka "
            "timestamp (CreateTime or LogAppendTime)",
            labels=["topic"],
        )
        for topic, ages in list(self.topics.items()):
            cumulative, total = [], 0
            for bound, count in zip(_BOUNDS, ages.buckets, strict=True):
                total += count
                cumulative.append((bound, float(total)))
            hist.add_metric([topic], cumulative, ages.sum)
            hist.samples.append(Sample(f"{name}_created", {"topic": topic}, ages.created))
        yield hist
        unknown = CounterMetricFamily(
            f"{self._prefix}_event_age_unknown_total",
            "Delivered events whose age is unknown: the record has no timestamp "
            "(no_timestamp) or one later than the answer (future: clock skew)",
            labels=["topic", "reason"],
        )
        for key, count in list(self.unknown.items()):
            unknown.add_metric(key, count, created=self.unknown_created[key])
        yield unknown


class _Partition:
    __slots__ = ("last_returned", "read", "unread")

    def __init__(self, now: float) -> None:
        self.read: deque[tuple[int, float]] = deque()  # (offset, timestamp s), held or not
        self.last_returned = now  # wall time the partition last returned records
        self.unread = 0  # records at the broker past what was handed over (statistics)


class TimeLag:
    """Per assigned partition, how many seconds behind: a collector computed at scrape.

    ``read`` (consumer thread, once per consumed batch) notes each record's offset and
    timestamp; ``from_stats`` (consumer thread, librdkafka statistics) how many records
    wait at the broker; ``collect`` (the scrape, on the event loop) asks ``heads`` —
    per assigned partition the oldest offset held without an outcome, or None — and
    drops what is behind it (``heads`` may be set later: the wiring place builds the
    metrics before the tracker). What is kept per partition is bounded by the records held
    plus one batch: every ``read`` drops the entries below the heads first.
    """

    def __init__(
        self,
        prefix: str,
        heads: Callable[[], dict[TopicPartition, int | None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = f"{prefix}_time_lag_seconds"
        self.heads = heads
        self._clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _Partition] = {}

    def read(self, messages: list[Message]) -> None:
        """A batch ``consume`` returned: each record's offset and timestamp, in order."""
        now = self._clock()
        heads = self.heads()
        with self._lock:
            parts = self._partitions
            touched: set[TopicPartition] = set()
            for msg in messages:
                if msg.error() is not None:
                    continue
                tp = (str(msg.topic()), int(msg.partition() or 0))
                part = parts.get(tp)
                if part is None:
                    part = parts[tp] = _Partition(now)
                if tp not in touched:
                    touched.add(tp)
                    part.last_returned = now
                    _drop_behind(part.read, heads.get(tp))
                kind, ms = msg.timestamp()
                ts = ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else -1.0
                # No timestamp, or one from the future: the time it was read is the
                # best lower bound of its age.
                part.read.append((int(msg.offset() or 0), ts if 0 <= ts <= now else now))

    def from_stats(self, stats: dict[str, Any]) -> None:
        """librdkafka statistics: per partition, the records at the broker not handed
        over yet (end offset minus ``app_offset``; before any, minus the committed
        offset or the log start)."""
        now = self._clock()
        with self._lock:
            for topic, tdata in stats.get("topics", {}).items():
                for pid, pdata in tdata.get("partitions", {}).items():
                    if pid == "-1" or pdata.get("fetch_state") in (None, "none", "stopped"):
                        continue
                    tp = (topic, int(pid))
                    part = self._partitions.get(tp)
                    if part is None:
                        part = self._partitions[tp] = _Partition(now)
                    part.unread = _unread(pdata)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self._name, _HELP, labels=["topic", "partition"])

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(self._name, _HELP, labels=["topic", "partition"])
        for (topic, partition), seconds in sorted(self.seconds().items()):
            gauge.add_metric([topic, str(partition)], seconds)
        yield gauge

    def seconds(self) -> dict[TopicPartition, float]:
        """The time lag of every assigned partition, now."""
        heads = self.heads()
        now = self._clock()
        out: dict[TopicPartition, float] = {}
        with self._lock:
            for tp in self._partitions.keys() - heads.keys():
                del self._partitions[tp]  # revoked
            for tp, head in heads.items():
                part = self._partitions.get(tp)
                if part is None:
                    part = self._partitions[tp] = _Partition(now)
                _drop_behind(part.read, head)
                if head is not None and part.read:
                    # The oldest held record's entry (a later one only while its batch
                    # is being noted: a lower bound).
                    out[tp] = max(0.0, now - part.read[0][1])
                elif head is None and part.unread > 0:
                    out[tp] = max(0.0, now - part.last_returned)
                else:
                    out[tp] = 0.0
        return out


_HELP = (
    "Seconds behind, per assigned partition: the age of the oldest record held without "
    "an outcome; with none held but records waiting at the broker, the time since the "
    "partition last returned records; 0 when caught up"
)


def _drop_behind(read: deque[tuple[int, float]], head: int | None) -> None:
    """Forget the records before the oldest one held (all of them when none is held)."""
    if head is None:
        read.clear()
        return
    while read and read[0][0] < head:
        read.popleft()


def _unread(pdata: dict[str, Any]) -> int:
    end = pdata.get("ls_offset", -1)
    if end < 0:
        end = pdata.get("hi_offset", -1)
    handed = pdata.get("app_offset", -1)
    if handed < 0:
        handed = pdata.get("committed_offset", -1)
    if handed < 0:
        handed = pdata.get("lo_offset", -1)
    return end - handed if end >= 0 and handed >= 0 else 0
