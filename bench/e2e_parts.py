"""Pieces of the end-to-end benchmark (bench/e2e.py): sinks, topic filling, /proc figures.

Sinks:
- nginx (Debian's nginx-light) answering 201 with a fixed body on loopback: costs
  ~10 µs per request, so the connector is the bottleneck (scenarios a, s, sg); over
  HTTPS with a self-signed certificate for ``localhost`` (scenarios h, hs).
- the project's CDP sandbox with ``--no-validate --latency-ms 50`` (scenario b).
- bench/latency_sink.py, 201 after 50 ms (scenarios b2, s2).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from connector.cdp.transport import EVENT_PATH
from connector.decode.schemas import load_schema
from connector.sample_clickstream import SITES, encode_confluent, sample_records
from scripts.services.common import REPO_ROOT, free_port

# v3: the newest clickstream schema (page.utm), what the sitecore mapping reads referrer
# and UTM fields from; the asyncapi example mapping reads it as it reads v1.
SCHEMA = REPO_ROOT / "avro" / "clickstream-v3.avsc"
SCHEMA_VERSION = 3
CLIENT_KEY = "bench-client-key"
BROWSER_IDS_TOPIC = "bench.browser-ids"
API_TOKEN = "bench-api-token"  # noqa: S105 - a made-up credential for local sinks


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format stamp '$msec $uri';
    access_log {tmp}/access.log stamp buffer=256k flush=200ms;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    server {{
        listen 127.0.0.1:{port}{tls};
        client_max_body_size 1m;
        client_body_buffer_size 64k;
        location / {{
            default_type application/json;
            return 201 '{{"ref":"x","status":"OK"}}';
        }}
    }}
}}
"""


# -- /proc figures --------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (utime + stime in /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interpreter_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process's threads outside librdkafka (whose threads are named
    ``rdk:*``): the interpreter's threads, which share one lock, so this is the part
    bound by one core."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        if not comm.startswith("rdk:"):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM in /proc/<pid>/status), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def delivery_gaps(times: list[float], bin_seconds: float = 0.05) -> dict[str, float]:
    """Stalls in the steady part of a run, from the sink's answer times (sorted).

    The steady part runs from the 10% to the 90% delivery (no start-up, no tail).
    ``gap_ms``: the longest time between two deliveries in it; ``below_half_s``: the time
    spent in ``bin_seconds`` bins that delivered less than half the median bin."""
    nan = float("nan")
    if len(times) < 100:
        return {"gap_ms": nan, "gap_at_s": nan, "below_half_s": nan, "steady_s": nan}
    low, high = times[len(times) // 10], times[(len(times) * 9) // 10]
    steady = [t for t in times if low <= t <= high]
    gap, at = max((b - a, a) for a, b in itertools.pairwise(steady))
    bins = [0] * (int((high - low) / bin_seconds) + 1)
    for t in steady:
        bins[int((t - low) / bin_seconds)] += 1
    bins = bins[:-1] or bins  # the last bin is cut short by the 90% mark
    median = sorted(bins)[len(bins) // 2]
    below = sum(1 for n in bins if n < median / 2) * bin_seconds
    return {"gap_ms": gap * 1000, "gap_at_s": at - times[0], "below_half_s": below,
            "steady_s": high - low}  # fmt: skip


# -- sinks ------------------------------------------------------------------------


@dataclass
class Sink:
    name: str
    url: str  # base URL (the connector appends the event path)
    proc: subprocess.Popen[bytes]
    cafile: Path | None = None  # the self-signed certificate an HTTPS sink serves
    stamps: Path | None = None  # '<unix time> <path>' per answered request (nginx, latency)

    def stamps_at(self) -> int:
        """Where the stamps file ends now (read from here after a run)."""
        return self.stamps.stat().st_size if self.stamps and self.stamps.exists() else 0

    def delivered_at(self, position: int) -> list[float]:
        """Times of the event requests answered since ``position`` (browser-id creations
        left out), in order."""
        if self.stamps is None or not self.stamps.exists():
            return []
        with self.stamps.open("rb") as f:
            f.seek(position)
            lines = f.read().decode(errors="replace").splitlines()
        times = []
        for line in lines:
            stamp, _, path = line.partition(" ")
            if "browser/create" not in path:
                with contextlib.suppress(ValueError):
                    times.append(float(stamp))
        return sorted(times)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def nginx_binary(install: bool) -> str | None:
    """nginx on PATH (or /usr/sbin); with ``install``, apt-get nginx-light when root."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("bench: installing nginx-light with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], env=env,
                   check=False, capture_output=True)  # fmt: skip
    return shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin")


def _start_sink(
    name: str,
    tmp: Path,
    argv: Callable[[int], list[str]],
    *,
    scheme_host: str = "http://127.0.0.1",
    cafile: Path | None = None,
    stamps: Path | None = None,
    **popen: Any,
) -> Sink:
    """Start a sink process on a free port (``argv`` builds its command line from the
    port), its output in ``tmp``, and wait until it answers (trusting ``cafile``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (tmp / "sink.out").open("wb") as log:
        proc = subprocess.Popen(argv(port), stdout=log, stderr=subprocess.STDOUT, **popen)
    sink = Sink(name, f"{scheme_host}:{port}", proc, cafile, stamps)
    _wait_answers(sink, ssl.create_default_context(cafile=str(cafile)) if cafile else None)
    return sink


def start_nginx(binary: str, tmp: Path, *, certificate: tuple[Path, Path] | None = None) -> Sink:
    """nginx answering 201; over HTTPS at ``https://localhost:<port>`` with ``certificate``."""
    tls = ""
    if certificate is not None:
        tls = f" ssl;\n        ssl_certificate {certificate[0]};\n" \
              f"        ssl_certificate_key {certificate[1]}"  # fmt: skip

    def argv(port: int) -> list[str]:
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, tls=tls))
        return [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]

    return _start_sink(
        "nginx https" if certificate else "nginx",
        tmp,
        argv,
        scheme_host="https://localhost" if certificate else "http://127.0.0.1",
        cafile=certificate[0] if certificate else None,
        stamps=tmp / "access.log",
    )


def start_sandbox(tmp: Path, latency_ms: float) -> Sink:
    return _start_sink(
        f"sandbox {latency_ms:g} ms",
        tmp,
        lambda port: [
            sys.executable, "-m", "connector", "sandbox", "--port", str(port),
            "--client-key", CLIENT_KEY, "--api-token", API_TOKEN, "--no-validate",
            "--latency-ms", f"{latency_ms:g}", "--max-records", "1000",
        ],
        cwd=REPO_ROOT,
    )  # fmt: skip


def start_latency_sink(
    tmp: Path, latency_ms: float, *, certificate: tuple[Path, Path] | None = None,
    record: Path | None = None,
) -> Sink:  # fmt: skip
    """bench/latency_sink.py: 201 after a fixed delay, ~20 µs of CPU per request;
    over HTTPS at ``https://localhost:<port>`` with ``certificate`` (cert, key); with
    ``record``, the answer times of the marked records go there when it stops."""
    tls = ["--cert", str(certificate[0]), "--key", str(certificate[1])] if certificate else []
    tls += ["--record", str(record)] if record else []
    stamps = tmp / "stamps.log"
    return _start_sink(
        f"latency sink {latency_ms:g} ms{' https' if certificate else ''}",
        tmp,
        lambda port: [
            sys.executable, "-m", "bench.latency_sink", "--port", str(port),
            "--latency-ms", f"{latency_ms:g}", "--stamps", str(stamps), *tls,
        ],
        scheme_host="https://localhost" if certificate else "http://127.0.0.1",
        cafile=certificate[0] if certificate else None,
        stamps=stamps,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (openssl): ``(cert.pem, key.pem)``."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _wait_answers(sink: Sink, context: ssl.SSLContext | None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if sink.proc.poll() is not None:
            raise RuntimeError(f"{sink.name} exited with {sink.proc.returncode}")
        req = urllib.request.Request(sink.url + EVENT_PATH, data=b"{}", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=2, context=context):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it listens
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- the topic ----------------------------------------------------------------------


def register_schema(registry_url: str, subject: str) -> int:
    """Register the clickstream schema under ``subject``; returns its id (as a producer would)."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    return int(client.register_schema(subject, Schema(SCHEMA.read_text(), "AVRO")))


def fill_topic(
    bootstrap: str, topic: str, schema_id: int, count: int, guests: int, partitions: int
) -> None:
    """Create ``topic`` and write ``count`` Confluent-framed Avro clickstream records.

    ``min(count, 20000)`` distinct sample records are encoded once and cycled (the
    connector's work per record does not depend on the event id being new)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    ).values():
        future.result(30)
    distinct = sample_records(min(count, 20_000), guests=guests, seed=2026,
                              version=SCHEMA_VERSION)  # fmt: skip
    values = encode_confluent(distinct, load_schema(SCHEMA), schema_id)
    keys = [r["anonymous_id"].encode() for r in distinct]
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
         "queue.buffering.max.messages": 500_000, "compression.type": "lz4"}
    )  # fmt: skip
    n = len(values)
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=keys[i % n], value=values[i % n])
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("producer did not deliver everything")


def fill_topic_new_visitors(
    bootstrap: str, topic: str, schema_id: int, count: int, guests: int, partitions: int,
    percent: float,
) -> None:  # fmt: skip
    """``fill_topic`` where ``percent`` % of the records, evenly spread, are the first
    (and only) event of a visitor never seen before (``anonymous_id`` and key
    ``new-visitor-<i>``); the rest are the usual ``guests`` visitors, whose browser ids
    the bench pre-fills."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    ).values():
        future.result(30)
    distinct = sample_records(min(count, 20_000), guests=guests, seed=2026,
                              version=SCHEMA_VERSION)  # fmt: skip
    schema = load_schema(SCHEMA)
    values = encode_confluent(distinct, schema, schema_id)
    keys = [r["anonymous_id"].encode() for r in distinct]
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
         "queue.buffering.max.messages": 500_000, "compression.type": "lz4"}
    )  # fmt: skip
    n = len(values)
    fresh = [i for i in range(count) if int((i + 1) * percent / 100) != int(i * percent / 100)]
    records = [{**distinct[i % n], "anonymous_id": f"new-visitor-{i:08d}"} for i in fresh]
    encoded = encode_confluent(records, schema, schema_id)
    new = {i: (r["anonymous_id"].encode(), v)
           for i, r, v in zip(fresh, records, encoded, strict=True)}  # fmt: skip
    for i in range(count):
        key, value = new.get(i) or (keys[i % n], values[i % n])
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("producer did not deliver everything")


def warm_browser_ids(bootstrap: str, topic: str, guests: int) -> int:
    """A browser id for every visitor of the bench topic, in a compacted ``topic`` (as
    earlier runs of a connector would have left them): the sitecore scenarios measure
    the steady state, not the first-visit creations. Returns how many were written."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=3, replication_factor=1,
                   config={"cleanup.policy": "compact"})  # fmt: skip
    for future in admin.create_topics([new]).values():
        future.result(30)
    visitors = {r["anonymous_id"] for r in sample_records(20_000, guests=guests, seed=2026,
                                                          version=SCHEMA_VERSION)}  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for visitor in sorted(visitors):
        producer.produce(topic, key=visitor.encode(), value=str(uuid.uuid4()).encode())
    if producer.flush(60) != 0:
        raise RuntimeError("producer did not deliver the browser ids")
    return len(visitors)


class GroupProgress:
    """Committed offsets of a group against the topic's end, with one reused consumer."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._parts = [TopicPartition(topic, p) for p in range(partitions)]
        self.end = sum(
            self._consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self._parts
        )

    def committed(self) -> int:
        try:
            parts = self._consumer.committed(self._parts, timeout=10)
        except Exception:  # noqa: BLE001 - the group's coordinator may not exist yet
            return 0
        return sum(max(tp.offset, 0) for tp in parts)

    def close(self) -> None:
        self._consumer.close()


# -- the connector's /metrics ----------------------------------------------------------


def scrape(port: int) -> dict[str, float]:
    """Prometheus text → {series: value} (series with labels as written)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for series, value in metrics.items():
        if series.split("{")[0] == name and all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += value
    return total


def histogram_quantile(metrics: dict[str, float], name: str, q: float) -> float:
    """Like Prometheus' histogram_quantile: linear inside the bucket holding rank q."""
    buckets: list[tuple[float, float]] = []
    for series, value in metrics.items():
        if series.startswith(name + "_bucket{"):
            le = series.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def connector_config(
    *, bootstrap: str, topic: str, group: str, registry_url: str, sink_url: str, port: int,
    max_in_flight: int, extra_delivery: dict[str, Any] | None = None,
    dialect: str = "asyncapi", root: Path = REPO_ROOT,
) -> dict[str, Any]:  # fmt: skip
    """The connector.yaml of a benchmark run: the shipped defaults, local addresses, the
    dialect's example mapping from the source tree ``root`` (another checkout: `src=`)."""
    mapping = "mappings.sitecore.yaml" if dialect == "sitecore" else "mappings.example.yaml"
    cdp: dict[str, Any] = {"dialect": dialect, "base_url": sink_url, "region": None}
    if dialect == "sitecore":
        cdp["browser_ids"] = {"topic": BROWSER_IDS_TOPIC}
        cdp["points_of_sale"] = list(SITES)  # the sample data's, all known to the sink
    return {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group},
        "topics": [{"name": topic, "decoder": "confluent"}],
        "schema_registry": {"url": registry_url},
        "mapping": str(root / "config" / mapping),
        "cdp": cdp,
        "delivery": {"ordering": "key", "max_in_flight": max_in_flight, **(extra_delivery or {})},
        "dead_letter": {"topic": f"{topic}.dlq"},
        "observability": {"host": "127.0.0.1", "port": port, "log_format": "json"},
        "shutdown": {"drain_timeout_seconds": 10},
    }
