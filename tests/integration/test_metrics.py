"""/metrics against what really happened: the sandbox's records, the DLQ, Kafka's own lag."""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTP

from connector import __version__
from connector.cdp.dialect import get_dialect
from connector.decode.decoders import ConfluentAvroDecoder
from connector.decode.registry import RegistryClient
from connector.mapping import compile_mapping
from connector.sample_clickstream import sample_records
from tests.integration.connector_proc import ConnectorFactory, ConnectorProcess, wait_for
from tests.integration.kafka_helpers import describe_group
from tests.integration.test_pipeline import EXAMPLE, Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def lag_gauges(connector: ConnectorProcess, scenario: Scenario, name: str) -> dict[int, int]:
    found: dict[int, int] = {}
    for line in connector.metrics().splitlines():
        if line.startswith(name + "{") and f'topic="{scenario.topic}"' in line:
            partition = int(line.split('partition="')[1].split('"')[0])
            found[partition] = int(float(line.rsplit(" ", 1)[1]))
    return found


def age_buckets(connector: ConnectorProcess) -> dict[str, float]:
    """The event-age histogram's cumulative buckets, by ``le``, summed over topics."""
    found: dict[str, float] = {}
    for line in connector.metrics().splitlines():
        if line.startswith("cdp_connector_event_age_seconds_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            found[le] = found.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def time_lag(connector: ConnectorProcess) -> tuple[dict[int, float], tuple[float, float]]:
    """The time-lag gauge per partition, and the wall-clock span the scrape took."""
    started = time.time()
    text = connector.metrics()
    span = (started, time.time())
    found: dict[int, float] = {}
    for line in text.splitlines():
        if line.startswith("cdp_connector_time_lag_seconds{"):
            partition = int(line.split('partition="')[1].split('"')[0])
            found[partition] = float(line.rsplit(" ", 1)[1])
    return found, span


def kafka_view(scenario: Scenario) -> tuple[dict[int, int], dict[int, int]]:
    """Lag and committed offset per partition, from Kafka's consumer-groups tool."""
    rows = describe_group(scenario.bootstrap, scenario.group)
    mine = {p: row for (topic, p), row in rows.items() if topic == scenario.topic}
    return (
        {p: row.lag or 0 for p, row in mine.items()},
        {p: row.current_offset or 0 for p, row in mine.items()},
    )


def test_metrics_match_the_sandbox_the_dead_letters_and_kafkas_lag(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique)
    records = sample_records(300, guests=40, seed=21)
    for record in records[::10]:
        record["user_agent"] = "Mozilla/5.0 (compatible; Googlebot/2.1)"  # the 'bots' rule
    bad = ((b"bad-magic", b"\x07not avro"), (b"bad-id", struct.pack(">bI", 0, 99_999) + b"x"))
    scenario.produce(records, bad)
    outage_records = 60
    config = scenario.config(
        connector_factory, cdp_sandbox.url,
        kafka={"group_id": scenario.group, "client": {"statistics.interval.ms": 300}},
        # An open circuit pauses consumption, and a record of the outage not read by
        # then would stay unread. It opens after this many failures: the outage's
        # records are the heads of at most 30 guests' lanes, each failed head is tried
        # again after at least 0.5 s (the 503's Retry-After, capped by the back-off's
        # ceiling), so it opens 1 s or more after the first failure, not at once.
        delivery={"circuit": {"failure_threshold": 2 * outage_records, "open_seconds": 0.5,
                              "max_open_seconds": 1.0},
                  "retry": {"max_attempts": 100, "initial_backoff_seconds": 0.05,
                            "max_backoff_seconds": 0.5}},
    )  # fmt: skip
    connector = connector_factory.start(config)
    scenario.caught_up()

    # An outage with records that all map to events: nothing can finish, so the
    # committed offsets and the lag stand still while both views are compared.
    mapper = compile_mapping(EXAMPLE, get_dialect("asyncapi"))
    decoder = ConfluentAvroDecoder(RegistryClient(schema_registry.url))
    more = [
        r for r in sample_records(200, guests=30, seed=22)
        if mapper.map(decoder.decode(scenario.serialize(r, scenario.topic)), scenario.topic).events
    ][:outage_records]  # fmt: skip
    cdp_sandbox.set_faults(outage_seconds=3600)
    produced_from = time.time()
    scenario.produce(more)
    produced_by = time.time()
    wait_for(lambda: connector.metric("cdp_connector_circuit_open") == 1, 30, "circuit open")
    ages_before = age_buckets(connector)
    lag, offsets = kafka_view(scenario)
    assert sum(lag.values()) == len(more)
    wait_for(
        lambda: lag_gauges(connector, scenario, "cdp_connector_consumer_lag") == lag, 10,
        f"lag gauges to show {lag}",
    )  # fmt: skip
    assert lag_gauges(connector, scenario, "cdp_connector_committed_offset") == offsets
    assert connector.metric("cdp_connector_records_buffered") == len(more)
    first_lag, first_at = time_lag(connector)  # every record of the outage read and held
    assert connector.metric("cdp_connector_events_total", outcome="retried") >= 1
    assert connector.metric("cdp_connector_http_responses_total", **{"class": "5xx"}) >= 1
    assert connector.metric("cdp_connector_ready") == 1  # an outage is not a reason to restart

    # Time lag: the oldest held record's age, growing with the clock while nothing finishes.
    time.sleep(0.5)
    lag_now, now_at = time_lag(connector)
    oldest = max(first_lag.values())  # +2 ms: Kafka timestamps are whole ms, rounded down
    assert first_at[0] - produced_by <= oldest <= first_at[1] - produced_from + 0.002
    assert max(lag_now.values()) - oldest >= now_at[0] - first_at[1]
    assert age_buckets(connector) == ages_before  # nothing delivered, nothing aged
    outage_ended = time.time()

    cdp_sandbox.clear_faults()
    scenario.caught_up()
    wait_for(lambda: connector.metric("cdp_connector_records_buffered") == 0, 10, "drained")
    wait_for(lambda: set(time_lag(connector)[0].values()) == {0.0}, 10, "time lag back to 0")
    # Events delivered after the outage carry their real age: older than the outage
    # lasted since they were produced, younger than the test.
    after = age_buckets(connector)
    delivered_after = after["+Inf"] - ages_before["+Inf"]
    assert delivered_after >= len(more)
    floor = max(b for b in after if b != "+Inf" and float(b) <= outage_ended - produced_by)
    assert after[floor] - ages_before[floor] == 0  # none younger than the outage
    assert after["300.0"] - ages_before["300.0"] == delivered_after  # not years: real ages
    assert connector.metric("cdp_connector_event_age_unknown_total") == 0

    consumed = connector.metric("cdp_connector_records_consumed_total", topic=scenario.topic)
    delivered = connector.metric("cdp_connector_records_delivered_total")
    skipped = connector.metric("cdp_connector_records_skipped_total")
    dead = connector.metric("cdp_connector_records_dead_lettered_total")
    stats = cdp_sandbox.stats()
    letters = scenario.dead_letters(int(dead) + 1, timeout=3)

    assert consumed == len(records) + len(bad) + len(more)
    assert delivered + skipped + dead == consumed  # every record has exactly one outcome
    assert connector.metric("cdp_connector_records_skipped_total", rule="bots") == 30
    assert connector.metric("cdp_connector_events_total", outcome="delivered") == len(
        cdp_sandbox.events()
    )
    assert (
        connector.metric("cdp_connector_http_responses_total", **{"class": "2xx"})
        == (stats["by_status"]["201"])
    )
    assert connector.metric("cdp_connector_http_responses_total") == (
        connector.metric("cdp_connector_delivery_latency_seconds_count")
    )
    assert dead == len(letters)
    assert connector.metric("cdp_connector_records_dead_lettered_total", stage="decode") == 2
    assert connector.metric("cdp_connector_commits_total") > 0
    assert connector.metric("cdp_connector_commit_failures_total") == 0
    assert f'version="{__version__}"' in connector.metrics()

    lag, offsets = kafka_view(scenario)
    assert set(lag.values()) == {0}
    wait_for(
        lambda: lag_gauges(connector, scenario, "cdp_connector_consumer_lag") == lag
        and lag_gauges(connector, scenario, "cdp_connector_committed_offset") == offsets,
        10, "gauges to match Kafka's tool at the end",
    )  # fmt: skip

    # Each commit names the connector's version and instance (Kafka's consumer-groups
    # tool does not print commit metadata; a client's committed() returns it).
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": scenario.group})
    tps = probe.committed([KafkaTP(scenario.topic, p) for p in range(3)], timeout=10)
    probe.close()
    assert {tp.metadata.split(" ")[0] for tp in tps} == {f"cdp-connector/{__version__}"}
    assert all(tp.metadata.split(" ")[1].endswith(f"-{connector.proc.pid}") for tp in tps)
    assert connector.terminate() == 0
    scenario.registry_client.close()
