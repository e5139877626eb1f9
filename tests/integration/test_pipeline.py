"""The connector end to end: real broker, real schema registry, real HTTP to the sandbox.

Each test starts `cdp-connector run` as a subprocess, exactly as an operator would.
"""

from __future__ import annotations

import json
import signal
import struct
import time
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.cdp.dialect import get_dialect
from connector.decode.decoders import ConfluentAvroDecoder
from connector.decode.registry import RegistryClient
from connector.mapping import compile_mapping
from connector.sample_clickstream import sample_records
from tests.integration.connector_proc import (
    REPO_ROOT,
    ConnectorFactory,
    avro_serializer,
    wait_for,
)
from tests.integration.kafka_helpers import describe_group
from tests.integration.streams import VIEW_ALL, TestStream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = REPO_ROOT / "config" / "mappings.example.yaml"


class Scenario(TestStream):
    """One test's topic, DLQ topic, group and produced records."""

    def __init__(self, bootstrap: str, registry_url: str, unique: str, partitions: int = 3):
        super().__init__(
            bootstrap, registry_url, unique, prefix="clicks", group_prefix="cdp",
            partitions=partitions,
        )  # fmt: skip
        self.registry_client = SchemaRegistryClient({"url": registry_url})
        self.close_when_done(self.registry_client.close)
        self.serialize = avro_serializer(self.registry_client)
        self.values: list[bytes] = []
        self.records: list[dict[str, Any]] = []

    def produce(
        self, records: list[dict[str, Any]], extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 10})
        for record in records:
            value = self.serialize(record, self.topic)
            self.values.append(value)
            self.records.append(record)
            producer.produce(self.topic, key=record["anonymous_id"].encode(), value=value)
            producer.poll(0)
        for key, value in extra:
            producer.produce(self.topic, key=key, value=value)
        assert producer.flush(30) == 0


@pytest.fixture
def scenario(bootstrap: str, schema_registry: Any, unique: str) -> Scenario:
    return Scenario(bootstrap, schema_registry.url, unique)


def delivered_event_ids(sandbox: Any) -> list[str]:
    return [event["ext"]["eventId"] for event in sandbox.events()]


def test_every_record_arrives_as_mapped_and_bad_records_are_dead_lettered(
    scenario: Scenario, connector_factory: ConnectorFactory, cdp_sandbox: Any, schema_registry: Any
) -> None:
    records = sample_records(400, guests=60, seed=11)
    good = scenario.serialize(records[0], scenario.topic)
    bad = [
        (b"bad-magic", b"\x07not avro"),
        (b"bad-schema-id", struct.pack(">bI", 0, 987_654) + good[5:]),
        (b"bad-truncated", good[:7]),
    ]
    scenario.produce(records, tuple(bad))
    connector = connector_factory.start(scenario.config(connector_factory, cdp_sandbox.url))

    scenario.caught_up()

    # What the sandbox received is exactly what the mapping makes of each record.
    mapper = compile_mapping(EXAMPLE, get_dialect("asyncapi"))
    decoder = ConfluentAvroDecoder(RegistryClient(schema_registry.url))
    expected: list[str] = []
    for value in scenario.values:
        result = mapper.map(decoder.decode(value), scenario.topic)
        expected += [json.dumps(json.loads(e.body), sort_keys=True) for e in result.events]
    got = [json.dumps(event, sort_keys=True) for event in cdp_sandbox.events()]
    assert sorted(got) == sorted(expected)
    assert len(expected) >= 400

    letters = scenario.dead_letters(len(bad))
    assert sorted(m.key() for m in letters) == sorted(key for key, _ in bad)
    for msg in letters:
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers["__connect.errors.topic"] == scenario.topic
        assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
        assert headers["__connect.errors.class.name"] == "DecodeError"
        assert headers["__connect.errors.exception.message"]
        assert dict(bad)[msg.key()] == msg.value()  # the original bytes, untouched

    # Kafka's own tool agrees: nothing left behind.
    rows = describe_group(scenario.bootstrap, scenario.group)
    assert {row.lag for (topic, _), row in rows.items() if topic == scenario.topic} == {0}
    assert connector.terminate() == 0


def test_events_of_one_guest_arrive_in_offset_order_under_random_latency(
    scenario: Scenario, connector_factory: ConnectorFactory, cdp_sandbox: Any
) -> None:
    records = sample_records(1500, guests=150, seed=12)
    scenario.produce(records)
    cdp_sandbox.set_faults(latency_ms=1, latency_jitter_ms=25)
    connector_factory.start(
        scenario.config(
            connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
            delivery={"max_in_flight": 128},
        )
    )  # fmt: skip

    scenario.caught_up()

    produced: dict[str, list[str]] = defaultdict(list)
    for record in records:
        produced[record["anonymous_id"]].append(record["event_id"])
    arrived: dict[str, list[str]] = defaultdict(list)
    for event in cdp_sandbox.events():
        arrived[event["browser_id"]].append(event["ext"]["eventId"])
    assert arrived == produced
    assert cdp_sandbox.stats()["max_concurrent"] > 20  # really concurrent across guests


def test_outage_commits_nothing_stays_bounded_and_delivers_everything_after(
    scenario: Scenario, connector_factory: ConnectorFactory, cdp_sandbox: Any
) -> None:
    records = sample_records(1200, guests=100, seed=13)
    scenario.produce(records)
    cdp_sandbox.set_faults(outage_seconds=3600)
    connector = connector_factory.start(
        scenario.config(
            connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
            kafka={"group_id": scenario.group, "poll_batch": 50},
            delivery={"max_buffered_records": 200, "max_in_flight": 32,
                      "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.05,
                                "max_backoff_seconds": 1.0},
                      "circuit": {"failure_threshold": 10, "open_seconds": 0.5,
                                  "max_open_seconds": 1.0}},
        )
    )  # fmt: skip

    wait_for(lambda: connector.metric("cdp_connector_paused") == 1, 30, "consumer paused")
    for _ in range(10):  # the outage goes on: no commits, memory stays within the ceiling
        time.sleep(0.3)
        assert connector.metric("cdp_connector_records_buffered") <= 200
        assert scenario.nothing_committed()
    assert connector.metric("cdp_connector_circuit_open") == 1
    assert cdp_sandbox.stats()["accepted"] == 0

    cdp_sandbox.clear_faults()
    scenario.caught_up()

    assert sorted(delivered_event_ids(cdp_sandbox)) == sorted(r["event_id"] for r in records)
    assert scenario.dead_letters(0) == []


def test_429_retry_after_is_waited_out(
    scenario: Scenario, connector_factory: ConnectorFactory, cdp_sandbox: Any
) -> None:
    scenario.produce(sample_records(1, guests=1, seed=14))
    cdp_sandbox.set_faults(rate_429=1.0, retry_after=2.0)
    connector_factory.start(
        scenario.config(
            connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
            delivery={"retry": {"max_attempts": 50, "initial_backoff_seconds": 0.05}},
        )
    )  # fmt: skip
    wait_for(lambda: cdp_sandbox.stats()["by_status"].get("429", 0) >= 1, 30, "first 429")
    time.sleep(5.0)

    # Waiting 2 s after each 429 allows at most 3 requests in 5 s; the plain
    # backoff (0.05 s doubling) would have sent 6 or more.
    throttled = cdp_sandbox.stats()["by_status"].get("429", 0)
    assert 2 <= throttled <= 4
    cdp_sandbox.clear_faults()
    scenario.caught_up()
    assert len(cdp_sandbox.events()) == 1


def test_401_halts_without_dead_letters_or_commits_and_recovers(
    scenario: Scenario, connector_factory: ConnectorFactory, cdp_sandbox: Any
) -> None:
    records = sample_records(50, guests=10, seed=15)
    scenario.produce(records)
    cdp_sandbox.set_faults(auth_fail=True)
    connector = connector_factory.start(
        scenario.config(
            connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
            delivery={"auth_probe_seconds": 1.0},
        ),
        expect_errors=[r"delivery halted: CDP refused the credentials"],
    )  # fmt: skip

    wait_for(lambda: connector.readyz()[0] == 503, 30, "readiness false")
    _, body = connector.readyz()
    assert any("credentials" in reason for reason in body["reasons"])
    assert connector.metric("cdp_connector_halted") == 1
    assert connector.metric("cdp_connector_ready") == 0
    assert connector.metric("cdp_connector_http_responses_total", **{"class": "4xx"}) >= 1
    time.sleep(2.5)
    assert scenario.nothing_committed()
    assert cdp_sandbox.stats()["accepted"] == 0
    requests_while_halted = cdp_sandbox.stats()["requests"]
    assert requests_while_halted < 20  # one slow prober, not every record retrying

    cdp_sandbox.clear_faults()
    scenario.caught_up()
    wait_for(lambda: connector.readyz()[0] == 200, 10, "readiness back")
    assert connector.metric("cdp_connector_halted") == 0
    assert connector.metric("cdp_connector_ready") == 1
    assert connector.metric("cdp_connector_records_dead_lettered_total") == 0
    assert sorted(delivered_event_ids(cdp_sandbox)) == sorted(r["event_id"] for r in records)
    assert scenario.dead_letters(0) == []
    assert "refused the credentials" in connector.output()


def test_two_connectors_share_partitions_and_hand_over_on_stop(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique, partitions=6)
    records = sample_records(2000, guests=300, seed=17)
    scenario.produce(records)
    cdp_sandbox.set_faults(latency_ms=5, latency_jitter_ms=10)
    config = scenario.config(
        connector_factory, cdp_sandbox.url, mapping=VIEW_ALL, delivery={"max_in_flight": 16}
    )
    first = connector_factory.start(config, name="first")
    second = connector_factory.start(config, name="second")

    def both_assigned() -> bool:
        return all(c.readyz()[1]["assigned_partitions"] > 0 for c in (first, second))

    wait_for(both_assigned, 60, "both replicas to own partitions")
    assert first.readyz()[1]["assigned_partitions"] + second.readyz()[1]["assigned_partitions"] == 6
    assert second.terminate() == 0  # leaves the group after committing what it finished

    scenario.caught_up()
    assert set(delivered_event_ids(cdp_sandbox)) == {r["event_id"] for r in records}
    wait_for(lambda: first.readyz()[1]["assigned_partitions"] == 6, 30, "hand-over")


def test_sigterm_drains_and_a_second_signal_exits_at_once(
    scenario: Scenario, connector_factory: ConnectorFactory, cdp_sandbox: Any
) -> None:
    scenario.produce(sample_records(200, guests=20, seed=19))
    # Requests that stay open: the drain waits for requests in flight (records parked in
    # an outage's back-off are not waited for, so an outage alone would not hold it).
    cdp_sandbox.set_faults(latency_ms=120_000)
    config = scenario.config(
        connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
        shutdown={"drain_timeout_seconds": 60}, cdp={"timeout_seconds": 120},
    )  # fmt: skip
    connector = connector_factory.start(config)
    wait_for(lambda: cdp_sandbox.stats()["max_concurrent"] > 0, 30, "requests in flight")

    connector.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert connector.proc.poll() is None  # draining, bounded by drain_timeout_seconds
    started = time.monotonic()
    connector.proc.send_signal(signal.SIGTERM)

    assert connector.proc.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5
    assert scenario.nothing_committed()
    assert "second signal" in connector.output()
