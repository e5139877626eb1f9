"""Shared parts of the broker failover tests (``test_broker_failover.py``).

A ``LiveStream`` produces sample records at a steady rate into a topic of the
three-node cluster (replication factor 3, ``min.insync.replicas=2``, record timestamps
set by the broker: ``LogAppendTime``) while a test stops and starts nodes. Afterwards
``Freshness`` pairs each record's append time with the moment the sandbox accepted its
event: what the consumer side added after the broker had the record, not the time a
producer spent waiting for a new leader.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from connector.config import BrowserIdSettings, KafkaSettings
from connector.delivery.browser_ids import BrowserIdStore
from connector.run_state import RunState
from connector.sample_clickstream import encode_schemaless, sample_records
from connector.settle.deadletter import DeadLetterQueue, producer_conf
from scripts.services.kafka_cluster import Cluster
from tests.integration.connector_proc import ConnectorFactory, ConnectorProcess
from tests.integration.streams import VIEW_ALL, read_topic

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "avro" / "clickstream-v1.avsc"
#: librdkafka debug contexts for a run that should show where time goes
#: (``CDP_TEST_KAFKA_DEBUG=metadata,broker,fetch,cgrp``); off by default.
DEBUG_ENV = "CDP_TEST_KAFKA_DEBUG"


def create_replicated_topic(
    bootstrap: str, name: str, partitions: int, config: dict[str, str] | None = None
) -> None:
    """A topic with three copies (the cluster's ``min.insync.replicas=2`` applies)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=3, config=config or {})
    admin.create_topics([topic])[name].result(timeout=30)


@dataclass
class LiveStream:
    """A keyed topic fed at ``rate`` records/s by a producer thread (``acks=all``,
    idempotent), its dead-letter topic name and a consumer group."""

    cluster: Cluster
    unique: str
    rate: int = 250
    partitions: int = 6
    guests: int = 300
    topic: str = ""
    group: str = ""
    produced: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    readiness: ReadinessWatch | None = None
    _errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topic = f"failover-{self.unique}"
        self.group = f"cdp-failover-{self.unique}"
        self.dlq = f"{self.topic}.dlq"
        create_replicated_topic(self.cluster.bootstrap, self.topic, self.partitions,
                                {"message.timestamp.type": "LogAppendTime"})  # fmt: skip
        self.cluster.wait_in_sync([self.topic])

    def config(self, factory: ConnectorFactory, sandbox_url: str) -> dict[str, Any]:
        """The connector's config: defaults but for the test's topic, group and sandbox
        (the dead-letter topic is created by the connector, with the cluster's defaults)."""
        client: dict[str, Any] = {}
        observability: dict[str, Any] = {}
        if debug := _debug_contexts():
            client["debug"] = debug
            observability["log_level"] = "DEBUG"
        return factory.config(
            observability=observability,
            kafka={"bootstrap_servers": self.cluster.bootstrap, "group_id": self.group,
                   "commit_interval_seconds": 1.0, "client": client},
            topics=[{"name": self.topic, "decoder": "schemaless", "schema": str(SCHEMA)}],
            cdp={"base_url": sandbox_url, "region": None},
            dead_letter={"topic": self.dlq},
            mapping=VIEW_ALL,
        )  # fmt: skip

    def start(self, seconds: float) -> None:
        """Produce for ``seconds`` in the background (``wait`` joins)."""
        records = sample_records(int(self.rate * seconds), guests=self.guests, seed=11)
        values = encode_schemaless(records, fastavro.parse_schema(_schema()))
        self._thread = threading.Thread(
            target=self._produce, args=(records, values), name="live-stream", daemon=True
        )
        self._thread.start()

    def _produce(self, records: list[dict[str, Any]], values: list[bytes]) -> None:
        producer = Producer({
            "bootstrap.servers": self.cluster.bootstrap, "acks": "all",
            "enable.idempotence": True, "linger.ms": 5, "log_level": 2,
        })  # fmt: skip
        start = time.monotonic()
        for i, (record, value) in enumerate(zip(records, values, strict=True)):
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self._stop.is_set():
                break
            producer.produce(self.topic, key=record["anonymous_id"].encode(), value=value,
                             on_delivery=self._delivered)  # fmt: skip
            producer.poll(0)
        if producer.flush(120) != 0:
            self._errors.append("producer: records not acknowledged within 120 s")

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.produced += 1
        else:
            self._errors.append(f"producer: {err}")

    def wait(self, timeout: float = 150) -> None:
        """Until every record was produced and acknowledged."""
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish"
        assert not self._errors, self._errors

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(150)

    def appended(self) -> tuple[dict[str, tuple[int, float]], Counter[str]]:
        """Every record in the topic, read to its end: event id → (partition, append time
        in seconds) of its first copy, and how many copies the topic holds of each.

        The producer is idempotent, but not across an epoch bump: when a node goes down
        with a batch unanswered, librdkafka may bump the producer epoch and send the batch
        again, and the broker appends it again (seen in a rolling restart: offsets 598-599
        at epoch 0, the same two records at 600-601 at epoch 1). The connector posts each
        record once, so each copy once."""
        consumer = Consumer({
            "bootstrap.servers": self.cluster.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        })  # fmt: skip
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
        schema = fastavro.parse_schema(_schema())
        found: dict[str, tuple[int, float]] = {}
        copies: Counter[str] = Counter()
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + 60
        try:
            while any(position[p] < end for p, end in ends.items()):
                assert time.monotonic() < deadline, f"read {position} of {ends} in 60 s"
                for msg in consumer.consume(1000, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    partition, offset, value = msg.partition(), msg.offset(), msg.value()
                    assert partition is not None and offset is not None and value is not None
                    position[partition] = offset + 1
                    record = fastavro.schemaless_reader(_reader(value), schema, schema)
                    assert isinstance(record, dict)
                    event_id = str(record["event_id"])
                    copies[event_id] += 1
                    found.setdefault(event_id, (partition, msg.timestamp()[1] / 1000))
        finally:
            consumer.close()
        return found, copies


def _schema() -> Any:
    return json.loads(SCHEMA.read_text())


def _reader(value: bytes) -> io.BytesIO:
    return io.BytesIO(value)


def _debug_contexts() -> str:
    return os.environ.get(DEBUG_ENV, "")


@dataclass
class Freshness:
    """Per record: when the sandbox first accepted its event minus its append time."""

    seconds: dict[str, float]
    partition: dict[str, int]
    appended_at: dict[str, float]

    @classmethod
    def of(cls, appended: dict[str, tuple[int, float]], events: list[dict[str, Any]]) -> Freshness:
        first: dict[str, float] = {}
        for accepted in events:
            first.setdefault(str(accepted["event"]["ext"]["eventId"]), accepted["received_at"])
        seconds = {rid: first[rid] - at for rid, (_, at) in appended.items() if rid in first}
        return cls(seconds, {r: p for r, (p, _) in appended.items()},
                   {r: at for r, (_, at) in appended.items()})  # fmt: skip

    def quantile(self, q: float) -> float:
        values = sorted(self.seconds.values())
        return values[min(len(values) - 1, int(q * len(values)))]

    def slow(self, over: float = 2.0) -> Iterator[str]:
        return (rid for rid, s in self.seconds.items() if s > over)

    def dump(self, path: Path) -> None:
        """Per record, for a closer look: partition, appended at, freshness (CSV)."""
        rows = sorted((self.appended_at[r], self.partition[r], s) for r, s in self.seconds.items())
        path.write_text("".join(f"{at:.3f},{p},{s:.3f}\n" for at, p, s in rows))

    def took_over(self, partitions: set[int], after: float) -> float:
        """When the first of ``partitions`` had a new leader: the earliest append after
        ``after`` on any of them (the producer retries into the new leader at once)."""
        return min(at for r, at in self.appended_at.items()
                   if self.partition[r] in partitions and at > after)  # fmt: skip

    def summary(self, records: list[str]) -> str:
        if not records:
            return "none"
        values = sorted(self.seconds[r] for r in records)
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        slow = sum(1 for v in values if v > 2.0)
        return (f"{len(values)} records, p50 {statistics.median(values):.3f} s, p99 {p99:.3f} s, "
                f"max {values[-1]:.3f} s, {slow} > 2 s")  # fmt: skip

    def report(self, name: str, stopped_at: float, took_over: float | None = None) -> str:
        """Freshness of every record, and of three groups when a node crashed: appended
        before ``stopped_at`` (what the dead node had; its followers' high watermark
        waits for its fencing), between then and ``took_over`` (the surviving leaders'
        high watermark waits for the fencing too: the dead node is still in the ISR),
        and after ``took_over`` (what the consumer side adds)."""
        records = list(self.seconds)
        slow = Counter(self.partition[r] for r in self.slow())
        lines = [f"freshness {name}: {self.summary(records)}; > 2 s per partition "
                 f"{dict(sorted(slow.items()))}"]  # fmt: skip
        if took_over is not None:
            groups = {
                "appended before the kill": [
                    r for r in records if self.appended_at[r] < stopped_at],
                f"appended in the {took_over - stopped_at:.1f} s until the new leaders": [
                    r for r in records if stopped_at <= self.appended_at[r] < took_over],
                "appended after the new leaders took over": [
                    r for r in records if self.appended_at[r] >= took_over],
            }  # fmt: skip
            lines += [f"  {what}: {self.summary(group)}" for what, group in groups.items()]
        return "\n".join(lines)

    def delivered_after(self, at: float) -> set[int]:
        """Partitions with a record appended after ``at`` that reached the sandbox."""
        return {self.partition[r] for r in self.seconds if self.appended_at[r] > at}


def duplicates(events: list[dict[str, Any]], copies: Counter[str]) -> int:
    """Events posted beyond one per record: an event id the topic holds twice (the
    producer's epoch bump, ``LiveStream.appended``) is two records, posted once each."""
    ids = Counter(str(e["event"]["ext"]["eventId"]) for e in events)
    return sum(max(0, n - copies[event_id]) for event_id, n in ids.items())


class DurableWriters:
    """The connector's two acks=all, idempotent writers, run in this process through a
    leader change: the dead-letter producer (``DeadLetterQueue``) and the browser-id
    store (``BrowserIdStore.put``), each on a topic of its own whose only partition
    ``leader`` leads. ``start`` writes one dead letter and one browser id every
    ``interval`` seconds until ``stop``; ``check`` asserts that every write was
    acknowledged and is in its topic exactly once."""

    def __init__(self, cluster: Cluster, unique: str, leader: int, interval: float = 0.02) -> None:
        self.cluster = cluster
        self.dlq = f"failover-dlq-{unique}"
        self.ids_topic = f"failover-ids-{unique}"
        others = [n for n in sorted(cluster.nodes) if n != leader]
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        replicas = [[leader, *others]]  # one partition; the first replica is its leader
        topics = [
            NewTopic(self.dlq, num_partitions=1, replica_assignment=replicas),
            NewTopic(self.ids_topic, num_partitions=1, replica_assignment=replicas,
                     config={"cleanup.policy": "compact"}),
        ]  # fmt: skip
        for future in admin.create_topics(topics).values():
            future.result(timeout=30)
        cluster.wait_in_sync([self.dlq, self.ids_topic])
        self.kafka = KafkaSettings(bootstrap_servers=cluster.bootstrap)
        self.interval = interval
        self.state = RunState()
        self.queue = DeadLetterQueue(Producer(producer_conf(self.kafka.producer_conf())),
                                     self.dlq, self.state)  # fmt: skip
        self.store = BrowserIdStore(self.kafka, BrowserIdSettings(topic=self.ids_topic))
        self.store.start()
        self.dead_letters = 0
        self.acknowledged = 0
        self.ids: dict[str, str] = {}
        self.put_errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._write_dead_letters, daemon=True),
                         threading.Thread(target=self._write_ids, daemon=True)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _acknowledged(self) -> None:
        self.acknowledged += 1

    def _write_dead_letters(self) -> None:
        while not self._stop.is_set():
            key = f"dl-{self.dead_letters}".encode()
            self.queue.publish(key=key, value=b"x", original_headers=None, headers=[],
                               on_done=self._acknowledged)  # fmt: skip
            self.dead_letters += 1
            self.queue.poll(self.interval)

    def _write_ids(self) -> None:
        while not self._stop.is_set():
            visitor = f"visitor-{len(self.ids)}"
            ref = uuid.uuid4().hex
            try:
                self.store.put(visitor, ref)  # blocks until acknowledged
            except Exception as exc:  # noqa: BLE001 - counted, then asserted to be none
                self.put_errors.append(f"{visitor}: {exc}")
                continue
            self.ids[visitor] = ref
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)
        self.queue.flush(120)
        self.queue.poll(0)
        self.store.stop()

    def check(self) -> str:
        """Assert the guarantees; a line saying what was written."""
        assert self.state.fatal_exit is None, self.state.fatal_exit
        assert self.acknowledged == self.dead_letters, "a dead letter was not acknowledged"
        assert self.put_errors == []
        written = Counter(m.key() for m in read_topic(self.cluster.bootstrap, self.dlq,
                                                      self.dead_letters))  # fmt: skip
        assert len(written) == self.dead_letters, "dead letters lost"
        assert set(written.values()) == {1}, "a dead letter written twice"
        in_topic = Counter(m.key() for m in read_topic(self.cluster.bootstrap, self.ids_topic,
                                                       len(self.ids)))  # fmt: skip
        assert set(in_topic.values()) == {1}, "a browser id written twice"
        reloaded = BrowserIdStore(self.kafka, BrowserIdSettings(topic=self.ids_topic))
        reloaded.start()
        try:
            assert {v: reloaded.get(v) for v in self.ids} == self.ids
        finally:
            reloaded.stop()
        return (f"through the leader change: {self.dead_letters} dead letters and "
                f"{len(self.ids)} browser ids acknowledged, each once in its topic")  # fmt: skip


class ReadinessWatch:
    """Asks a connector's ``/readyz`` every 0.2 s in a thread: what an operator's probe
    would have seen (``report``)."""

    def __init__(self, connector: ConnectorProcess) -> None:
        self.connector = connector
        self.answers: Counter[int] = Counter()
        self.reasons: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                status, body = self.connector.readyz()
            except OSError:
                continue
            self.answers[status] += 1
            self.reasons.update(body.get("reasons", []))

    def report(self) -> str:
        self._stop.set()
        self._thread.join(5)
        c = self.connector
        return (
            f"/readyz answers {dict(self.answers)} {dict(self.reasons) or ''}; commits "
            f"{c.metric('cdp_connector_commits_total'):.0f}, commit failures "
            f"{c.metric('cdp_connector_commit_failures_total'):.0f}"
        )
