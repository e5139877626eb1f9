"""Prometheus metrics and the health endpoints, on one small aiohttp server.

``/healthz``: the process and its event loop answer (the handler runs on the loop)
and the consumer thread is alive. ``/readyz``: subscribed, brokers reachable, every
subscribed topic exists, not halted by a fatal answer, not shutting down; the body
lists why not (``reasons``) and what is degraded while ready (``degraded``: the CDP
circuit open, the schema registry unreachable).
``/metrics``: Prometheus text format; names and labels in docs/operations.md.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample

from connector import __version__
from connector.cdp.client import Answer
from connector.freshness import EventAges, TimeLag
from connector.offsets.tracker import TopicPartition
from connector.records import Work
from connector.run_state import RunState

__all__ = ["Metrics", "brokers_up", "build_app", "start_server"]

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # new visitors per browser-id step
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STATUS_CLASSES = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}  # else "error" (no answer)


class _DeliveryCounts:
    """The dispatcher's per-request series, kept as plain numbers, exported at scrape.

    ``events_total``, ``http_responses_total``, ``delivery_latency_seconds`` and
    ``records_delivered_total`` change several times per event. As prometheus_client
    metrics each change takes a lock (four to six per record, ~2.5 µs); here it is a
    dict or list increment, and ``collect`` (a registry collector, called per scrape)
    turns the numbers into the same samples, ``_created`` included. Only the event loop
    (the dispatcher's observer calls) changes them, so no lock is needed.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self.created = time.time()
        self.status = dict.fromkeys((*_STATUS_CLASSES.values(), "error"), 0)
        self.events: dict[tuple[str, str], int] = {}  # (type, outcome) → count
        self.events_created: dict[tuple[str, str], float] = {}
        self.delivered = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, the last is +Inf
        self.latency_sum = 0.0
        self.stale_retries: Callable[[], int] = lambda: 0  # the CDP client's count

    def describe(self) -> Iterator[Metric]:
        """The registry's collector protocol: the same families as ``collect``."""
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        """The counts as metric families, built at each scrape (``/metrics``)."""
        p = self._prefix
        events = CounterMetricFamily(
            f"{p}_events_total",
            "CDP events by type and outcome (delivered, retried, dead_lettered)",
            labels=["type", "outcome"],
        )
        for labels, count in list(self.events.items()):
            events.add_metric(labels, count, created=self.events_created[labels])
        yield events
        responses = CounterMetricFamily(
            f"{p}_http_responses_total",
            "CDP answers by status class (2xx, 3xx, 4xx, 5xx; error: no answer)",
            labels=["class"],
        )
        for label, count in self.status.items():
            responses.add_metric([label], count, created=self.created)
        yield responses
        name = f"{p}_delivery_latency_seconds"
        latency = HistogramMetricFamily(
            name, "Time of one CDP request, from send to answer (or network error)"
        )
        cumulative, total = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            total += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        latency.add_metric([], cumulative, self.latency_sum)
        latency.samples.append(Sample(f"{name}_created", {}, self.created))
        yield latency
        yield CounterMetricFamily(
            f"{p}_records_delivered_total",
            "Records whose every event the CDP accepted",
            value=self.delivered,
            created=self.created,
        )
        yield CounterMetricFamily(
            f"{p}_http_stale_connection_retries_total",
            "CDP requests sent again on a new connection because the kept-alive one they "
            "went out on had been closed by the server (or a proxy) before any answer byte",
            value=self.stale_retries(),
            created=self.created,
        )


class _Children:
    """One metric's label children, each resolved once: later calls are a dict lookup."""

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class Metrics:
    """Every metric the connector exports, in its own registry (names: docs/operations.md).

    Label children that the hot path touches are bound once here or cached on first
    use, so a delivery costs a dict lookup and an increment, not a label resolution.
    """

    def __init__(self, instance: str = "") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        p = "cdp_connector"
        self.info = Gauge(
            f"{p}_info",
            "Always 1; the labels say which build and replica",
            ["version", "instance"],
            registry=r,
        )
        self.info.labels(__version__, instance).set(1)
        self._counts = _DeliveryCounts(p)  # events, answers, latency, records delivered
        r.register(self._counts)
        self._ages = EventAges(p)  # event_age_seconds, event_age_unknown_total
        r.register(self._ages)
        self.time_lag = TimeLag(p, dict)  # no partitions until ``track_time_lag``
        r.register(self.time_lag)
        self.records_consumed = Counter(
            f"{p}_records_consumed_total", "Records read from Kafka", ["topic"], registry=r
        )
        self.records_skipped = Counter(
            f"{p}_records_skipped_total",
            "Records a mapping rule skipped, by rule ('no-match' when no rule matched)",
            ["rule"],
            registry=r,
        )
        self.records_finished_before = Counter(
            f"{p}_records_finished_before_total",
            "Records read again that had an outcome before (named in the commit metadata): "
            "counted, not posted",
            registry=r,
        )
        self.mapping_path_problems = Counter(
            f"{p}_mapping_path_problems_total",
            "Mapping paths that do not fit a writer schema first seen at runtime, by topic",
            ["topic"],
            registry=r,
        )
        self.unknown_point_of_sale = Counter(
            f"{p}_unknown_point_of_sale_total",
            "Records dead-lettered because an event's pos is not in cdp.points_of_sale "
            "(each value logged once)",
            registry=r,
        )
        self.records_dead_lettered = Counter(
            f"{p}_records_dead_lettered_total",
            "Records written to the dead-letter topic (write acknowledged), by failing stage",
            ["stage"],
            registry=r,
        )
        self.browser_ids_created = Counter(
            f"{p}_browser_ids_created_total",
            "Browser ids made for new visitors (browser/create.json, written to the id topic)",
            registry=r,
        )
        self.browser_id_batch_visitors = Histogram(
            f"{p}_browser_id_batch_visitors",
            "New visitors per batched browser-id step: 'catch_up' (one read of the id topic "
            "to its end for every visitor waiting, after a partition assignment) and 'write' "
            "(one produce and flush of the ids made meanwhile); its count is the number of steps",
            ["step"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.requests_in_flight = Gauge(
            f"{p}_requests_in_flight", "CDP requests awaiting an answer", registry=r
        )
        self.records_buffered = Gauge(
            f"{p}_records_buffered", "Records read and not yet finished", registry=r
        )
        self.assigned_partitions = Gauge(
            f"{p}_assigned_partitions", "Partitions this replica owns", registry=r
        )
        self.paused = Gauge(f"{p}_paused", "1 while consumption is paused", registry=r)
        self.circuit_open = Gauge(f"{p}_circuit_open", "1 while the circuit is open", registry=r)
        self.halted = Gauge(
            f"{p}_halted", "1 while delivery is halted (401/403, fatal failure)", registry=r
        )
        self.ready = Gauge(f"{p}_ready", "1 while /readyz answers 200", registry=r)
        self.commits = Counter(
            f"{p}_commits_total", "Offset commits the broker acknowledged", registry=r
        )
        self.commit_failures = Counter(
            f"{p}_commit_failures_total", "Offset commits that failed", registry=r
        )
        self.consumer_lag = Gauge(
            f"{p}_consumer_lag",
            "Records between the committed offset and the partition end (librdkafka statistics)",
            ["topic", "partition"],
            registry=r,
        )
        self.topic_missing = Gauge(
            f"{p}_topic_missing",
            "1 while a subscribed topic (by name) does not exist in the cluster",
            ["topic"],
            registry=r,
        )
        self.committed_offset = Gauge(
            f"{p}_committed_offset",
            "Last committed offset, the next record to read (librdkafka statistics)",
            ["topic", "partition"],
            registry=r,
        )
        self._consumed = _Children(self.records_consumed)
        self._skipped = _Children(self.records_skipped)
        self._dead_lettered = _Children(self.records_dead_lettered)
        self._stats_series: set[tuple[str, str]] = set()

    # -- DispatchObserver (event loop only: see _DeliveryCounts) --------------------------

    def watch_stale_retries(self, count: Callable[[], int]) -> None:
        """Where ``http_stale_connection_retries_total`` is read at scrape (the client)."""
        self._counts.stale_retries = count

    def answered(self, event_type: str, answer: Answer, seconds: float) -> None:
        """``DispatchObserver``: count the answer's status class and its latency."""
        counts = self._counts
        status = answer.status
        counts.status[_STATUS_CLASSES.get(status // 100, "error") if status else "error"] += 1
        counts.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        counts.latency_sum += seconds

    def event_done(self, event_type: str, outcome: str) -> None:
        """``DispatchObserver``: count an event's outcome (delivered, retried, dead_lettered)."""
        events = self._counts.events
        key = (event_type, outcome)
        count = events.get(key)
        if count is None:
            self._counts.events_created[key] = time.time()
            count = 0
        events[key] = count + 1

    def record_delivered(self) -> None:
        """``DispatchObserver``: count a record whose events were all delivered."""
        self._counts.delivered += 1

    def event_delivered(self, work: Work) -> None:
        self._ages.delivered(work)

    def track_time_lag(self, heads: Callable[[], dict[TopicPartition, int | None]]) -> TimeLag:
        """Export ``time_lag_seconds`` of the partitions ``heads`` names (the offset
        tracker's); the source reports each batch to ``TimeLag.read``."""
        self.time_lag.heads = heads
        return self.time_lag

    # -- IdObserver (event loop) ----------------------------------------------------------

    def browser_id_created(self) -> None:
        self.browser_ids_created.inc()

    def browser_id_batch(self, step: str, visitors: int) -> None:
        self.browser_id_batch_visitors.labels(step).observe(visitors)

    # -- source and dead-letter hooks (consumer thread) ----------------------------------

    def consumed(self, topic: str, n: int) -> None:
        """The source read ``n`` records of ``topic``."""
        self._consumed(topic).inc(n)

    def finished_before(self, n: int) -> None:
        """The source read ``n`` records again that had an outcome before (not posted)."""
        self.records_finished_before.inc(n)

    def skipped(self, rule: str) -> None:
        """Settle skipped a record (``rule``: the rule that filtered it, or ``no-match``)."""
        self._skipped(rule).inc()

    def dead_lettered(self, stage: str) -> None:
        """A dead-letter write was acknowledged (``stage``: decode, map or deliver)."""
        self._dead_lettered(stage).inc()

    def committed(self, ok: bool) -> None:
        """The broker answered an offset commit (``Committer``): a success or a failure."""
        (self.commits if ok else self.commit_failures).inc()

    def topics_checked(self, names: list[str], missing: tuple[str, ...]) -> None:
        """``topic_missing`` for every subscribed topic name: 1 when missing, else 0."""
        for name in names:
            self.topic_missing.labels(name).set(1 if name in missing else 0)

    def update_from_stats(self, stats_json: str) -> None:
        """librdkafka statistics → per-partition lag and committed offset.

        ``consumer_lag`` is the end offset (``ls_offset`` under read_committed, else
        ``hi_offset``) minus ``committed_offset``: the LAG column of Kafka's
        consumer-groups tool. (``consumer_lag_stored`` counts from the offset *store*,
        which this connector does not use: it commits explicit offsets.) A partition
        the group never committed has no LAG there ("-"), and librdkafka says -1; its
        lag here counts from the log start (``lo_offset``), where ``auto.offset.reset:
        earliest`` (the default) starts reading, so ``sum()`` covers every assigned
        partition from the first report after assignment. Other offsets librdkafka
        does not know yet (-1) are not exported. Series of partitions no longer
        reported (revoked) are removed.
        """
        stats = json.loads(stats_json)
        self.time_lag.from_stats(stats)
        seen: set[tuple[str, str]] = set()
        for topic, tdata in stats.get("topics", {}).items():
            for pid, pdata in tdata.get("partitions", {}).items():
                if pid == "-1" or pdata.get("fetch_state") in (None, "none", "stopped"):
                    continue
                series = (topic, pid)
                lag = pdata.get("consumer_lag", -1)
                committed = pdata.get("committed_offset", -1001)
                if lag < 0 and committed < 0:
                    lag = _lag_from_log_start(pdata)
                if lag >= 0:
                    self.consumer_lag.labels(topic, pid).set(lag)
                    seen.add(series)
                if committed >= 0:
                    self.committed_offset.labels(topic, pid).set(committed)
                    seen.add(series)
        for topic, pid in self._stats_series - seen:
            for gauge in (self.consumer_lag, self.committed_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(topic, pid)
        self._stats_series = seen


def brokers_up(stats_json: str) -> bool:
    """Whether a librdkafka statistics report shows a broker connection up: what ends a
    "brokers unreachable" (librdkafka reports going down as an error, not coming back)."""
    brokers = json.loads(stats_json).get("brokers", {})
    return any(b.get("state") == "UP" for b in brokers.values())


def _lag_from_log_start(pdata: dict[str, Any]) -> int:
    """End minus log start of a never-committed partition; -1 while either is unknown."""
    start = pdata.get("lo_offset", -1)
    end = pdata.get("ls_offset", -1)
    if end < 0:
        end = pdata.get("hi_offset", -1)
    return end - start if start >= 0 and end >= start else -1


def build_app(
    state: RunState,
    metrics: Metrics,
    refresh: Callable[[], None],
    consumer_thread: Callable[[], threading.Thread | None],
) -> web.Application:
    """``refresh`` updates gauges from live state right before a scrape."""

    async def healthz(_: web.Request) -> web.Response:
        thread = consumer_thread()
        if thread is not None and not thread.is_alive() and not state.stopping:
            return web.json_response({"status": "consumer thread died"}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, reasons = state.readiness()
        body = {
            "ready": ready,
            "reasons": reasons,
            "degraded": state.degraded(),
            "assigned_partitions": state.assigned,
        }
        return web.json_response(body, status=200 if ready else 503)

    async def metrics_endpoint(_: web.Request) -> web.Response:
        refresh()
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp exposes the bound socket only here
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
