"""Steady-rate mode of the end-to-end benchmark: produce→answer latency below capacity.

    scripts/bench --steady 1000,25%,50%,90% [--steady-seconds 20] [--scenarios b2,s2,f,fs]

For each scenario (a latency sink: ``f``/``fs`` answering at once, ``b2``/``s2`` after
50 ms; asyncapi / sitecore) the capacity is measured first (the backlog run of
bench/e2e.py, steady records/s from 10% to 90%); then per rate (records/s, or a share
of that capacity) a fresh topic, a fresh sink and a fresh connector: records are
produced at the rate for a warm-up and then ``--steady-seconds``, each carrying a
sequence number (``~0000000042~`` in page.url and page.title, which both example
mappings copy into every event) and, as its Kafka timestamp (CreateTime), the wall time
of its ``produce()`` call. The sink notes the wall time of each answer per sequence
number (bench/latency_sink.py ``--record``): latency = answer - produce, per event
whose record was produced after the warm-up. Same host, same clock.

Figures per run: p50/p95/p99/max of that latency, and the same minus the sink's own
delay; the connector's own ``cdp_connector_event_age_seconds`` p50/p99 over the same
window (scrapes at its start and end, interpolated in the buckets: it measures to the
moment the connector has the answer, the sink to the moment it sent it); CPU µs per
event and peak RSS of the connector; its CPU while idle (assigned, nothing to read,
3 s before the producer starts); the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.e2e_parts import (
    API_TOKEN,
    BROWSER_IDS_TOPIC,
    CLIENT_KEY,
    SCHEMA,
    SCHEMA_VERSION,
    GroupProgress,
    connector_config,
    cpu_seconds,
    histogram_quantile,
    load_average,
    metric_sum,
    peak_rss_mb,
    scrape,
    start_latency_sink,
    warm_browser_ids,
)
from connector.decode.schemas import load_schema
from connector.sample_clickstream import encode_confluent, sample_records
from scripts.services.common import REPO_ROOT, free_port

#: name → (label, sink delay ms, dialect)
STEADY: dict[str, tuple[str, float, str]] = {
    "f": ("fast sink, asyncapi", 0.0, "asyncapi"),
    "fs": ("fast sink, sitecore", 0.0, "sitecore"),
    "b2": ("50 ms sink, asyncapi", 50.0, "asyncapi"),
    "s2": ("50 ms sink, sitecore", 50.0, "sitecore"),
}
AGE = "cdp_connector_event_age_seconds"
MARK = "~{:010d}~"
WARMUP_S = 3.0
IDLE_S = 3.0


def say(text: str) -> None:
    print(f"bench: {text}", flush=True)


class MarkedRecords:
    """Encoded sample records with a 10-digit sequence number patched into their bytes
    (a same-length replacement keeps the Avro string lengths right)."""

    def __init__(self, schema_id: int, guests: int, count: int = 2000) -> None:
        records = sample_records(count, guests=guests, seed=2026, version=SCHEMA_VERSION)
        blank = MARK.format(0)
        for record in records:
            record["page"]["title"] = f"{record['page']['title']} {blank}"
            record["page"]["url"] += f"#{blank}"
        self.values = encode_confluent(records, load_schema(SCHEMA), schema_id)
        self.keys = [r["anonymous_id"].encode() for r in records]
        self.spots = [_find_all(v, blank.encode()) for v in self.values]

    def get(self, seq: int) -> tuple[bytes, bytes]:
        i = seq % len(self.values)
        value = bytearray(self.values[i])
        mark = MARK.format(seq).encode()
        for at in self.spots[i]:
            value[at : at + len(mark)] = mark
        return self.keys[i], bytes(value)


def _find_all(data: bytes, part: bytes) -> list[int]:
    spots, at = [], data.find(part)
    while at >= 0:
        spots.append(at)
        at = data.find(part, at + 1)
    return spots


def produce_steady(
    bootstrap: str, topic: str, marked: MarkedRecords, rate: float, seconds: float
) -> list[float]:
    """Produce at ``rate`` records/s for ``seconds``; the produce time of each sequence
    number (also its Kafka timestamp, ms)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1})
    times: list[float] = []
    start = time.time()
    total = int(rate * seconds)
    while len(times) < total:
        due = min(total, int((time.time() - start) * rate) + 1)
        while len(times) < due:
            seq = len(times)
            key, value = marked.get(seq)
            now = time.time()
            producer.produce(topic, key=key, value=value, timestamp=int(now * 1000))
            times.append(now)
        producer.poll(0)
        next_at = start + len(times) / rate
        time.sleep(max(0.0, min(0.001, next_at - time.time())))
    if producer.flush(30) != 0:
        raise RuntimeError("steady producer did not deliver everything")
    return times


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def window_histogram(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if k.startswith(AGE + "_bucket")}


class SteadyRun:
    """One connector against one recording sink at one rate."""

    def __init__(self, bench: Any, marked: MarkedRecords, work: Path) -> None:
        self.bench = bench
        self.marked = marked
        self.work = work
        self.runs = 0

    def run(
        self, label: str, delay_ms: float, dialect: str, rate: float, seconds: float,
        variant: dict[str, str],
    ) -> dict[str, Any]:  # fmt: skip
        args = self.bench.args
        self.runs += 1
        n = self.runs
        topic = f"steady-{n}-{int(time.time())}"
        bootstrap = self.bench.broker.bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})
        new = NewTopic(topic, num_partitions=args.partitions, replication_factor=1)
        for future in admin.create_topics([new]).values():
            future.result(30)
        record = self.work / f"steady-{n}.answers"
        sink = start_latency_sink(self.work / f"steady-sink-{n}", delay_ms, record=record)
        port = free_port()
        config = connector_config(
            bootstrap=bootstrap, topic=topic, group=f"steady-{n}", port=port,
            registry_url=self.bench.registry.url, sink_url=sink.url,
            max_in_flight=args.max_in_flight, dialect=dialect,
        )  # fmt: skip
        env = {**os.environ, "CDP_CLIENT_KEY": CLIENT_KEY, "CDP_API_TOKEN": API_TOKEN,
               "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
        for key, value in variant.items():
            if "." in key:
                section, field = key.split(".", 1)
                config.setdefault(section, {})[field] = yaml.safe_load(value)
            else:
                env[key] = value
        path = self.work / f"steady-{n}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = (self.work / f"steady-{n}.log").open("wb")
        load = load_average()
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(path)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_assigned(proc, port)
            idle_from = cpu_seconds(proc.pid)
            time.sleep(IDLE_S)  # nothing to read yet: what waiting costs
            idle_cpu = (cpu_seconds(proc.pid) - idle_from) / IDLE_S
            # Warm-up, then the window: one producer run, split by sequence number.
            windowed: dict[str, Any] = {}

            def mark_window() -> None:
                windowed["cpu"] = cpu_seconds(proc.pid)
                windowed["metrics"] = scrape(port)

            first_window_seq = int(rate * WARMUP_S)
            timer = _at(WARMUP_S, mark_window)
            times = produce_steady(bootstrap, topic, self.marked, rate, WARMUP_S + seconds)
            timer.join()
            cpu_end, metrics_end = cpu_seconds(proc.pid), scrape(port)
            progress = GroupProgress(bootstrap, topic, f"steady-{n}", args.partitions)
            deadline = time.monotonic() + 120
            while progress.committed() < progress.end and time.monotonic() < deadline:
                time.sleep(0.2)
            progress.close()
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            sink.stop()
        latencies = sorted(
            at - times[seq]
            for seq, at in _read_answers(record)
            if first_window_seq <= seq < len(times)
        )
        before = windowed["metrics"]
        events = metric_sum(metrics_end, "cdp_connector_events_total", outcome="delivered") - (
            metric_sum(before, "cdp_connector_events_total", outcome="delivered")
        )
        hist = window_histogram(before, metrics_end)
        ms = [1000 * x for x in latencies]
        return {
            "scenario": label, "rate": rate, "seconds": seconds, "answers": len(ms),
            "p50_ms": percentile(ms, 0.50), "p95_ms": percentile(ms, 0.95),
            "p99_ms": percentile(ms, 0.99), "max_ms": ms[-1] if ms else float("nan"),
            "mean_ms": statistics.fmean(ms) if ms else float("nan"), "sink_ms": delay_ms,
            "metric_p50_ms": 1000 * histogram_quantile(hist, AGE, 0.50),
            "metric_p99_ms": 1000 * histogram_quantile(hist, AGE, 0.99),
            "cpu_us_per_event": (cpu_end - windowed["cpu"]) / events * 1e6 if events else 0,
            "peak_rss_mb": rss, "idle_cpu_pct": 100 * idle_cpu, "load_before": load,
            "variant": variant,
        }  # fmt: skip


def _at(delay: float, fn: Callable[[], None]) -> threading.Timer:
    thread = threading.Timer(delay, fn)
    thread.start()
    return thread


def _wait_assigned(proc: subprocess.Popen[bytes], port: int, timeout: float = 60) -> None:
    """Until the connector owns partitions (``/readyz``), plus a moment to start fetching."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"connector exited {proc.returncode} before it was assigned")
        with contextlib.suppress(OSError, ValueError):
            url = f"http://127.0.0.1:{port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                if json.loads(resp.read()).get("assigned_partitions", 0) > 0:
                    time.sleep(1.0)
                    return
        time.sleep(0.2)
    raise RuntimeError("connector not assigned within 60 s")


def _read_answers(path: Path) -> list[tuple[int, float]]:
    out = []
    for line in path.read_text().splitlines():
        seq, at = line.split()
        out.append((int(seq), float(at)))
    return out


def rates_for(spec: str, capacity: float) -> list[tuple[str, float]]:
    """``1000,25%`` → [("1,000/s", 1000.0), ("25% (N/s)", 0.25 * capacity)]."""
    out = []
    for part in spec.split(","):
        if part.endswith("%"):
            rate = float(part[:-1]) / 100 * capacity
            out.append((f"{part} ({rate:,.0f}/s)", rate))
        else:
            out.append((f"{float(part):,.0f}/s", float(part)))
    return out


def run_steady(bench: Any, work: Path) -> list[dict[str, Any]]:
    """The steady-rate mode: capacity per scenario, then each rate of ``--steady``."""
    args = bench.args
    names = [s for s in args.scenarios.split(",") if s in STEADY] or list(STEADY)
    marked = MarkedRecords(bench.schema_id, args.guests)
    runner = SteadyRun(bench, marked, work)
    variants: list[tuple[str, dict[str, str]]] = [
        (name, dict(kv.split("=", 1) for kv in env.split(",") if kv))
        for name, _, env in (v.partition(":") for v in args.variant)
    ] or [("", {})]
    rows: list[dict[str, Any]] = []
    for name in names:
        label, delay_ms, dialect = STEADY[name]
        if dialect == "sitecore" and not bench.browser_ids_warm:
            warm_browser_ids(bench.broker.bootstrap, BROWSER_IDS_TOPIC, args.guests)
            bench.browser_ids_warm = True
        capacity = float("nan")
        if any(p.endswith("%") for p in args.steady.split(",")):
            sink = start_latency_sink(work / f"capacity-{name}", delay_ms)
            try:
                cdp = {"dialect": dialect} if dialect == "sitecore" else {}
                row = bench.run_connector(sink, args.records, f"capacity {label}", {}, cdp)
            finally:
                sink.stop()
            capacity = row["eps_steady"] * row["records"] / max(row["events"], 1)
            say(f"{label}: capacity {capacity:,.0f} records/s ({row['eps_steady']:,.0f} events/s)")
        for rate_label, rate in rates_for(args.steady, capacity):
            for vname, variant in variants:
                tag = f"{label}, {rate_label}" + (f" [{vname}]" if vname else "")
                say(f"steady: {tag} for {WARMUP_S:g}+{args.steady_seconds:g}s ...")
                result = runner.run(tag, delay_ms, dialect, rate, args.steady_seconds, variant)
                result["capacity"] = capacity
                say(json.dumps(result, default=str))
                rows.append(result)
    return rows


def print_steady(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| scenario, rate | answers | p50 / p95 / p99 / max ms | above the sink: p50 / p99 ms "
        "| connector's metric p50 / p99 ms | CPU µs/event | idle CPU % | peak RSS MB | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        s = r["sink_ms"]
        print(f"| {r['scenario']} | {r['answers']:,} "
              f"| {r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} "
              f"| {r['p50_ms'] - s:.1f} / {r['p99_ms'] - s:.1f} "
              f"| {r['metric_p50_ms']:.1f} / {r['metric_p99_ms']:.1f} "
              f"| {r['cpu_us_per_event']:.0f} | {r['idle_cpu_pct']:.1f} | {r['peak_rss_mb']:.0f} "
              f"| {r['load_before']} |")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steady", help="steady-rate mode: rates, records/s or %% of capacity "
                        "(e.g. 1000,25%%,50%%,90%%); scenarios f,fs,b2,s2")  # fmt: skip
    parser.add_argument("--steady-seconds", type=float, default=20.0,
                        help="measured seconds per rate (after a 3 s warm-up)")  # fmt: skip
