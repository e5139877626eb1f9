"""Helpers for the guarantee tests: a stream whose every record's coordinates are known,
per-record delivery counts at the sandbox, a /metrics sampler and a registry that stops.

Black-box by design: they look only at what the connector leaves behind (the sandbox's
accepted events, the dead-letter topic, the group's committed offsets, /metrics, /proc).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from scripts.services import kafka
from tests.integration.connector_proc import (
    ConnectorProcess,
    avro_serializer,
)
from tests.integration.streams import VIEW_ALL, TestStream

Coords = tuple[int, int]  # (partition, offset)


class Stream(TestStream):
    """One test's topic, DLQ and group; remembers where each produced record landed."""

    default_mapping = VIEW_ALL

    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        unique: str,
        partitions: int = 3,
        *,
        dlq_config: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            bootstrap, registry_url, unique, prefix="g-clicks", group_prefix="g-cdp",
            partitions=partitions, dlq_config=dlq_config,
        )  # fmt: skip
        self.registry = SchemaRegistryClient({"url": registry_url})
        self.serialize = avro_serializer(self.registry)
        self.records: list[dict[str, Any]] = []
        self.where: dict[str, Coords] = {}  # event_id → (partition, offset)

    def close(self) -> None:
        self.registry.close()

    def produce(
        self,
        records: list[dict[str, Any]],
        *,
        values: list[bytes] | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> list[Coords]:
        """Produce ``records`` (keyed by guest, so one guest stays on one partition);
        returns each one's (partition, offset) as the broker acknowledged it."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})
        coords: list[Coords | None] = [None] * len(records)

        def on_delivery(index: int) -> Any:
            def done(err: KafkaError | None, msg: Message) -> None:
                assert err is None, err
                coords[index] = (int(msg.partition() or 0), int(msg.offset() or 0))

            return done

        for i, record in enumerate(records):
            value = values[i] if values is not None else self.serialize(record, self.topic)
            producer.produce(
                self.topic,
                key=record["anonymous_id"].encode(),
                value=value,
                headers=headers,
                on_delivery=on_delivery(i),
            )
            producer.poll(0)
        assert producer.flush(30) == 0
        done = [c for c in coords if c is not None]
        assert len(done) == len(records)
        for record, where in zip(records, done, strict=True):
            self.records.append(record)
            self.where[record["event_id"]] = where
        return done


def delivery_counts(sandbox: Any) -> Counter[str]:
    """How often the sandbox accepted each record (view-all: one VIEW per record)."""
    return Counter(event["ext"]["eventId"] for event in sandbox.events())


def first_delivery_order(sandbox: Any) -> dict[str, list[str]]:
    """Per guest, the record ids in the order each was *first* accepted."""
    seen: set[str] = set()
    order: dict[str, list[str]] = defaultdict(list)
    for event in sandbox.events():
        event_id = event["ext"]["eventId"]
        if event_id not in seen:
            seen.add(event_id)
            order[event["browser_id"]].append(event_id)
    return dict(order)


def record_order(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per guest, the record ids in produced (= offset) order."""
    order: dict[str, list[str]] = defaultdict(list)
    for record in records:
        order[record["anonymous_id"]].append(record["event_id"])
    return dict(order)


def out_of_order_guests(sandbox: Any, records: list[dict[str, Any]]) -> list[str]:
    """Guests whose first deliveries are not their records in order (a prefix is fine)."""
    expected = record_order(records)
    got = first_delivery_order(sandbox)
    return sorted(guest for guest, ids in got.items() if expected.get(guest, [])[: len(ids)] != ids)


def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (and the other Vm* lines) of a process, in KiB, from /proc."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.startswith("Vm") and rest.strip().endswith("kB"):
            found[name] = int(rest.split()[0])
    return found


@dataclass
class Sample:
    at: float
    paused: float
    buffered: float
    circuit_open: float
    halted: float


@dataclass
class MetricsSampler:
    """Scrapes /metrics every ``interval`` seconds on a thread until stopped."""

    connector: ConnectorProcess
    interval: float = 0.03
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MetricsSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return self.samples

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                text = self.connector.metrics()
            except OSError:
                return  # the connector is gone
            values = parse_metrics(text)
            self.samples.append(
                Sample(
                    time.monotonic(),
                    values.get("cdp_connector_paused", 0.0),
                    values.get("cdp_connector_records_buffered", 0.0),
                    values.get("cdp_connector_circuit_open", 0.0),
                    values.get("cdp_connector_halted", 0.0),
                )
            )
            self._stop.wait(self.interval)


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled-sum of every metric family in one scrape (consistent within it)."""
    values: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        values[series.split("{")[0]] += float(value)
    return dict(values)


class TcpProxy:
    """A loopback TCP forwarder that can be stopped (connections refused) and started
    again on the same port: a dependency that goes away and comes back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Close the listener and every open connection: nothing answers any more."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the other side
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass  # one side closed: the other follows below
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):  # already shut
                sock.shutdown(socket.SHUT_RDWR)


def owners(bootstrap: str, group: str, topic: str) -> dict[int, str]:
    """Partition → CLIENT-ID of its owner, as Kafka's consumer-groups tool prints it."""
    out = kafka.run_tool(
        "consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group
    ).stdout
    found: dict[int, str] = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 9 and cols[0] == group and cols[1] == topic and cols[2].isdigit():
            found[int(cols[2])] = cols[-1]
    return found


def contiguous_prefix(offsets: set[int]) -> int:
    """The first offset missing from ``offsets`` (how far a commit point could be)."""
    n = 0
    while n in offsets:
        n += 1
    return n
