"""End-to-end benchmark: Kafka backlog → `cdp-connector run` → HTTP sink, beside a naive loop.

    PYTHONPATH=. .venv/bin/python -m bench.e2e [--scenarios a,s,sg,b2,s2,h,hs]
        [--records 100000] [--sizes 10000,100000,1000000] [--repeat 3] [--profile DIR]
        [--variant NAME:VAR=VALUE,...]

Starts a Kafka broker and an Apicurio schema registry (scripts/services), fills a
topic with Confluent-framed Avro clickstream records (connector.sample_clickstream, schema
registered in the registry, keyed by anonymous_id over ``--guests`` guests), then
per run starts the connector as a subprocess (`python -m connector run --config`,
as in production) with a fresh consumer group and waits until the group's
committed offsets reach the end of the topic (lag 0).

Scenarios (``SCENARIOS``; docs/benchmarks.md): (a) nginx answering 201, asyncapi
dialect over post-basic (the connector is the bottleneck); (s) / (sg) the same sink,
sitecore dialect with its mapping over post-events / get-query, browser ids warm (a
compacted topic pre-filled with an id per visitor); (b) the CDP sandbox,
--no-validate, 50 ms per request; (b2) / (s2) bench/latency_sink.py at 50 ms, asyncapi
/ sitecore; (sn) / (s2n) (s) / (s2) where ``--new-visitors`` % of the records (one run per
share) are the first event of a visitor with no browser id yet (a browser-id topic of
the run's own, pre-filled for the usual visitors only); (h) / (hs) (a) / (s) over HTTPS
(nginx with a self-signed certificate the connector trusts through SSL_CERT_FILE); (c)
(a) at several backlog sizes, to show memory stays flat. For each sink the naive loop
(bench/naive.py) runs on the same topic with its own group for ``--naive-seconds``. A
variant ``src=DIR`` runs the connector (and its example mappings) from another checkout:
before/after in one run.

Figures per run: events/s from connector start and from its first delivery to lag
0, and the steady rate between 10% and 90% of the events delivered (/metrics
scraped every 0.2 s: no start-up, no tail, no commit-interval lateness); CPU seconds
of the connector process (/proc/<pid>/stat) and CPU µs per event
after start-up; peak RSS (VmHWM); p50/p99 of one CDP request from the connector's
own /metrics histogram (interpolated in its buckets); the load average; from the sink's
own log of answered requests (nginx's access log, bench/latency_sink.py --stamps), the
longest gap between two deliveries and the time spent below half the median rate (50 ms
bins), both in the steady part (10% to 90% of the deliveries).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.e2e_parts import (
    API_TOKEN,
    BROWSER_IDS_TOPIC,
    CLIENT_KEY,
    GroupProgress,
    Sink,
    connector_config,
    cpu_seconds,
    delivery_gaps,
    fill_topic,
    fill_topic_new_visitors,
    histogram_quantile,
    interpreter_cpu_seconds,
    load_average,
    make_certificate,
    metric_sum,
    nginx_binary,
    peak_rss_mb,
    register_schema,
    scrape,
    start_latency_sink,
    start_nginx,
    start_sandbox,
    warm_browser_ids,
)
from bench.steady import add_arguments, print_steady, run_steady
from scripts.services import kafka, registry
from scripts.services.common import REPO_ROOT, free_port

WORK = REPO_ROOT / ".local" / "bench"
SITECORE = {"dialect": "sitecore"}  # its default transport: post-events
NEW = {**SITECORE, "new_visitors": "yes"}  # one run per --new-visitors share
#: name → (label, sink kind, cdp settings); ``c`` (backlog sizes) is built apart.
SCENARIOS: dict[str, tuple[str, str, dict[str, str]]] = {
    "a": ("(a) nginx, asyncapi post-basic", "nginx", {}),
    "s": ("(s) nginx, sitecore post-events", "nginx", SITECORE),
    "sg": ("(sg) nginx, sitecore get-query", "nginx", {**SITECORE, "transport": "get-query"}),
    "b": ("(b) sandbox {ms:g} ms, asyncapi post-basic", "sandbox", {}),
    "b2": ("(b2) latency sink {ms:g} ms, asyncapi post-basic", "latency", {}),
    "s2": ("(s2) latency sink {ms:g} ms, sitecore post-events", "latency", SITECORE),
    "sn": ("(sn) nginx, sitecore post-events, {new:g}% new visitors", "nginx", NEW),
    "s2n": (
        "(s2n) latency sink {ms:g} ms, sitecore post-events, {new:g}% new visitors",
        "latency",
        NEW,
    ),
    "h": ("(h) nginx HTTPS, asyncapi post-basic", "nginx-https", {}),
    "hs": ("(hs) nginx HTTPS, sitecore post-events", "nginx-https", SITECORE),
}
LATENCY = "cdp_connector_delivery_latency_seconds"
TUNABLES = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=16777216"


def say(text: str) -> None:
    print(f"bench: {text}", flush=True)


class Bench:
    """Owns the services of one benchmark invocation and runs connectors against them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.broker: Any = None
        self.registry: Any = None
        self.topics: dict[tuple[int, float], str] = {}
        self.schema_id = 0
        self.runs = 0
        self.browser_ids_warm = False
        self._interp_first = 0.0  # interpreter CPU at the run's first delivery

    def topic(self, size: int, new: float = 0.0) -> str:
        """A topic holding ``size`` records (filled once per invocation); ``new`` % of
        them the first event of a visitor never seen before."""
        if (size, new) not in self.topics:
            name = f"clicks-{size}" + (f"-new{new:g}" if new else "")
            started = time.monotonic()
            args = (self.broker.bootstrap, name, self.schema_id, size, self.args.guests,
                    self.args.partitions)  # fmt: skip
            if new:
                fill_topic_new_visitors(*args, new)
            else:
                fill_topic(*args)
            say(f"filled {name}: {size:,} records in {time.monotonic() - started:.1f}s")
            self.topics[size, new] = name
        return self.topics[size, new]

    def run_connector(
        self,
        sink: Sink,
        size: int,
        label: str,
        variant: dict[str, str] | None = None,
        cdp: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        cdp = dict(cdp or {})
        new = float(cdp.pop("new_visitors", 0) or 0)
        topic = self.topic(size, new)
        self.runs += 1
        group = f"bench-{self.runs}-{int(time.time())}"
        port = free_port()
        variant = dict(variant or {})
        max_in_flight = int(variant.pop("max_in_flight", self.args.max_in_flight))
        root = Path(variant.pop("src", REPO_ROOT)).resolve()
        dialect = cdp.pop("dialect", "asyncapi")
        if dialect == "sitecore" and not self.browser_ids_warm:
            count = warm_browser_ids(self.broker.bootstrap, BROWSER_IDS_TOPIC, self.args.guests)
            say(f"browser ids: {count:,} visitors pre-filled in {BROWSER_IDS_TOPIC}")
            self.browser_ids_warm = True
        config = connector_config(
            bootstrap=self.broker.bootstrap, topic=topic, group=group,
            registry_url=self.registry.url, sink_url=sink.url, port=port,
            max_in_flight=max_in_flight, dialect=dialect, root=root,
        )  # fmt: skip
        config["cdp"].update(cdp)
        if new:  # a browser-id topic of its own: the new visitors are new in every run
            ids_topic = f"{BROWSER_IDS_TOPIC}-{self.runs}"
            warm_browser_ids(self.broker.bootstrap, ids_topic, self.args.guests)
            config["cdp"]["browser_ids"] = {"topic": ids_topic}
        for key in [k for k in variant if "." in k]:  # section.field=value sets the config
            section, field = key.split(".", 1)
            config.setdefault(section, {})[field] = yaml.safe_load(variant.pop(key))
        path = WORK / f"connector-{self.runs}.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "CDP_CLIENT_KEY": CLIENT_KEY, "CDP_API_TOKEN": API_TOKEN}
        env["PYTHONPATH"] = str(root)
        if sink.cafile is not None:  # trust the HTTPS sink's self-signed certificate
            env["SSL_CERT_FILE"] = str(sink.cafile)
        if self.args.glibc_tunables:
            env["GLIBC_TUNABLES"] = TUNABLES
        env.update(variant)
        log = (WORK / f"connector-{self.runs}.log").open("wb")
        progress = GroupProgress(self.broker.bootstrap, topic, group, self.args.partitions)
        load = load_average()
        sink_cpu = cpu_seconds(sink.proc.pid)
        stamps_from = sink.stamps_at()
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(path)],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        profiler = self._profile(proc.pid, label)
        try:
            first, cpu_first = self._wait_first_delivery(proc, port)
            delivered: list[tuple[float, float]] = []  # (time, events delivered), every 0.2 s
            while progress.committed() < progress.end:
                if not delivered or time.monotonic() - delivered[-1][0] >= 0.2:
                    with contextlib.suppress(OSError):
                        events_now = metric_sum(
                            scrape(port), "cdp_connector_events_total", outcome="delivered"
                        )
                        delivered.append((time.monotonic(), events_now))
                if time.monotonic() - started > self.args.run_timeout:
                    raise RuntimeError(
                        f"no lag 0 within {self.args.run_timeout:g}s; see {log.name}"
                    )
                if proc.poll() is not None:
                    raise RuntimeError(f"connector exited {proc.returncode}; see {log.name}")
                time.sleep(0.1)
            done = time.monotonic()
            done_wall = time.time()
            cpu, rss = cpu_seconds(proc.pid), peak_rss_mb(proc.pid)
            interp = interpreter_cpu_seconds(proc.pid) - self._interp_first
            sink_cpu = cpu_seconds(sink.proc.pid) - sink_cpu
            metrics = scrape(port)
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            if profiler is not None:
                profiler.wait(60)
            progress.close()
        events = metric_sum(metrics, "cdp_connector_events_total", outcome="delivered")
        time.sleep(0.5)  # the sink writes its stamps out every 0.2 s
        gaps = delivery_gaps([t for t in sink.delivered_at(stamps_from) if t <= done_wall])
        return {
            "scenario": label, "sink": sink.name, "records": size, "events": int(events),
            "wall_s": done - started, "eps_start": events / (done - started),
            "eps_first": events / (done - first), "eps_steady": steady_rate(delivered, events),
            "timeline": [(round(t - first, 2), int(n)) for t, n in delivered] + [
                (round(done - first, 2), "lag 0")],
            "cpu_s": cpu, "sink_cpu_s": sink_cpu,
            "cpu_us_per_event": (cpu - cpu_first) / events * 1e6 if events else float("nan"),
            "interp_us_per_event": interp / events * 1e6 if events else float("nan"),
            "peak_rss_mb": rss, **gaps, "new_visitors_pct": new,
            "p50_ms": histogram_quantile(metrics, LATENCY, 0.50) * 1000,
            "p99_ms": histogram_quantile(metrics, LATENCY, 0.99) * 1000,
            "max_in_flight": max_in_flight, "dialect": dialect,
            "transport": config["cdp"].get("transport", "default"), "load_before": load,
            "load_after": load_average(),
        }  # fmt: skip

    def _wait_first_delivery(self, proc: subprocess.Popen[bytes], port: int) -> tuple[float, float]:
        """Time and CPU of the connector's first CDP answer (polling /metrics at 20 Hz)."""
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"connector exited {proc.returncode} before delivering")
            try:
                answers = metric_sum(scrape(port), "cdp_connector_http_responses_total")
            except OSError:
                answers = 0
            if answers > 0:
                self._interp_first = interpreter_cpu_seconds(proc.pid)
                return time.monotonic(), cpu_seconds(proc.pid)
            time.sleep(0.05)

    def _profile(self, pid: int, label: str) -> subprocess.Popen[bytes] | None:
        if not self.args.profile:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = Path(self.args.profile) / f"{label.replace(' ', '_')}-{self.runs}"
        out.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking",
             "--format", "raw", "-o", f"{out}.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def run_naive(self, sink: Sink, size: int, label: str) -> dict[str, Any]:
        topic = self.topic(size)
        self.runs += 1
        load = load_average()
        cmd = [sys.executable, "-m", "bench.naive", "--bootstrap", self.broker.bootstrap,
               "--topic", topic, "--group", f"naive-{self.runs}-{int(time.time())}",
               "--registry", self.registry.url, "--sink", sink.url,
               "--seconds", str(self.args.naive_seconds), "--records", str(size)]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        out, _ = proc.communicate(timeout=self.args.naive_seconds + 120)
        result = json.loads(out.decode().strip().splitlines()[-1])
        result.update(scenario=label, sink=sink.name, load_before=load,
                      eps=result["events"] / result["seconds"])  # fmt: skip
        return result


def steady_rate(samples: list[tuple[float, float]], total: float) -> float:
    """Events/s from 10% to 90% of ``total`` delivered (times interpolated between the
    samples): the rate without start-up, the last lanes' tail and the commit interval's
    lateness."""

    def crossing(level: float) -> float | None:
        for (t0, n0), (t1, n1) in itertools.pairwise(samples):
            if n0 < level <= n1:
                return t0 + (t1 - t0) * (level - n0) / (n1 - n0)
        return None

    low, high = crossing(0.1 * total), crossing(0.9 * total)
    if low is None or high is None or high <= low:
        return float("nan")
    return 0.8 * total / (high - low)


def print_table(rows: list[dict[str, Any]], naive: dict[str, dict[str, Any]]) -> None:
    print(
        "\n| scenario | records | events | events/s (start→lag 0) | events/s (1st delivery→lag 0) "
        "| steady events/s (10→90%) | longest gap ms (steady) | below ½ median s "
        "| CPU s | CPU µs/event | of it interpreter µs/event | sink CPU s | peak RSS MB "
        "| p50 / p99 ms | naive events/s | ratio "
        "| load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        nv = naive.get(r["sink"])
        naive_eps = f"{nv['eps']:,.0f}" if nv else "-"
        ratio = f"{r['eps_first'] / nv['eps']:,.0f}x" if nv and nv["eps"] else "-"
        print(f"| {r['scenario']} | {r['records']:,} | {r['events']:,} | {r['eps_start']:,.0f} "
              f"| {r['eps_first']:,.0f} | {r['eps_steady']:,.0f} | {r['gap_ms']:.0f} "
              f"| {r['below_half_s']:.2f} | {r['cpu_s']:.1f} "
              f"| {r['cpu_us_per_event']:.0f} | {r['interp_us_per_event']:.0f} "
              f"| {r['sink_cpu_s']:.1f} "
              f"| {r['peak_rss_mb']:.0f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} "
              f"| {naive_eps} | {ratio} | {r['load_before']} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default="a,b,b2",
                        help="comma-separated, of: " + "; ".join(
                            f"{n}: {label.format(ms=50, new=20)}".replace("%", "%%")
                            for n, (label, _, _) in SCENARIOS.items()
                        ) + "; c: nginx at each --sizes")  # fmt: skip
    parser.add_argument("--records", type=int, default=100_000, help="backlog of (a) and (b)")
    parser.add_argument("--sizes", default="10000,100000", help="backlogs of (c)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds; each runs every scenario and variant once (best wins)",
    )
    parser.add_argument("--guests", type=int, default=2000, help="distinct keys (anonymous_id)")
    parser.add_argument("--new-visitors", default="5,20",
                        help="shares (%%) of records that are a new visitor's first event, one "
                        "run of sn / s2n each")  # fmt: skip
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency in (b)")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--glibc-tunables", action="store_true", help=f"GLIBC_TUNABLES={TUNABLES}")
    parser.add_argument("--profile", help="py-spy each connector run into this folder (raw)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get nginx")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:VAR=VALUE,... - a comparison run of every scenario with extra "
                        "environment; max_in_flight=N and section.field=V set the config "
                        "(repeatable)")  # fmt: skip
    parser.add_argument("--run-timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--json", help="also write every run's figures to this file")
    add_arguments(parser)  # the steady-rate mode: bench/steady.py
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    variants: list[tuple[str, dict[str, str]]] = [
        (name, dict(kv.split("=", 1) for kv in env.split(",") if kv))
        for name, _, env in (v.partition(":") for v in args.variant)
    ] or [("", {})]

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    bench = Bench(args)
    sinks: list[Sink] = []
    naive: dict[str, dict[str, Any]] = {}
    try:
        say(f"load {load_average()}; starting Kafka broker and schema registry ...")
        bench.broker = kafka.start_broker(WORK / "kafka", partitions=args.partitions, heap="768m")
        bench.registry = registry.start_registry(WORK / "registry")
        bench.schema_id = register_schema(bench.registry.url, "clickstream-value")
        if args.steady:
            steady = run_steady(bench, WORK)
            print_steady(steady)
            if args.json:
                Path(args.json).write_text(json.dumps({"steady": steady}, indent=2))
            return 0
        unknown = scenarios - set(SCENARIOS) - {"c"}
        if unknown:
            raise SystemExit(
                f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}, c"
            )
        # (label, sink kind, backlog, cdp settings)
        plan: list[tuple[str, str, int, dict[str, str]]] = [
            (label.format(ms=args.latency_ms, new=share), kind, args.records,
             {**cdp, "new_visitors": str(share)} if "new_visitors" in cdp else cdp)
            for name, (label, kind, cdp) in SCENARIOS.items()
            if name in scenarios
            for share in ([float(x) for x in args.new_visitors.split(",")]
                          if "new_visitors" in cdp else [0.0])
        ]  # fmt: skip
        if "c" in scenarios:
            plan += [(f"(c) nginx {int(s):,}", "nginx", int(s), {}) for s in args.sizes.split(",")]
        by_kind: dict[str, Sink] = {}
        for _label, kind, size, _cdp in plan:
            if kind not in by_kind:
                sink = by_kind[kind] = _start_sink(kind, args)
                sinks.append(sink)
                if not args.no_naive and sink.cafile is None:  # the naive loop: plain HTTP
                    say(f"naive loop against {sink.name} for {args.naive_seconds:g}s ...")
                    naive[sink.name] = bench.run_naive(sink, size, f"naive {sink.name}")
                    say(f"naive: {naive[sink.name]}")
        # Rounds: every scenario and variant once per round, so a change of load on the
        # machine falls on all of them alike and the ratios inside a round stay fair.
        best: dict[str, dict[str, Any]] = {}
        for i in range(args.repeat):
            for label, kind, size, cdp in plan:
                for name, env in variants:
                    tag = f"{label} [{name}]" if name else label
                    say(f"{tag}: round {i + 1}/{args.repeat}, {size:,} records ...")
                    row = bench.run_connector(by_kind[kind], size, tag, env, cdp)
                    say(json.dumps(row, default=str))
                    if tag not in best or row["eps_first"] > best[tag]["eps_first"]:
                        best[tag] = row
        rows: list[dict[str, Any]] = list(best.values())
        print_table(rows, naive)
        if args.json:
            Path(args.json).write_text(json.dumps({"runs": rows, "naive": naive}, indent=2))
        return 0
    finally:
        for sink in sinks:
            sink.stop()
        for service in (bench.registry, bench.broker):
            if service is not None:
                service.stop()


def _start_sink(kind: str, args: argparse.Namespace) -> Sink:
    if kind in ("nginx", "nginx-https"):
        binary = nginx_binary(install=not args.no_install)
        tls = make_certificate(WORK / "tls") if kind == "nginx-https" else None
        if binary is not None:
            return start_nginx(binary, WORK / kind, certificate=tls)
        if tls is not None:
            say("nginx not available: HTTPS falls back to bench/latency_sink.py, 0 ms")
            return start_latency_sink(WORK / "latency-sink-https", 0.0, certificate=tls)
        say("nginx not available: falling back to the sandbox with --no-validate, 0 ms")
        return start_sandbox(WORK / "sandbox-0", 0.0)
    if kind == "latency":
        return start_latency_sink(WORK / "latency-sink", args.latency_ms)
    return start_sandbox(WORK / "sandbox", args.latency_ms)


if __name__ == "__main__":
    raise SystemExit(main())
