"""Metrics from librdkafka statistics, and the replay filter/origin parsing (no services)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient, TestServer

from connector.cdp.answer import Answer, Outcome
from connector.observability import Metrics, brokers_up, build_app
from connector.pipeline import on_stats
from connector.run_state import RunState
from connector.settle.deadletter import REPLAY_ATTEMPTS, Origin, error_headers
from connector.source.replay_reader import RecordFilter, ReplayOptions, parse_time


def stats(partitions: dict[str, dict[str, object]]) -> str:
    return json.dumps({"topics": {"clicks": {"partitions": partitions}}})


NO_ANSWER = Answer(Outcome.RETRYABLE, None, "connection refused")


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_lag_is_counted_from_the_committed_offset_not_the_unused_offset_store() -> None:
    metrics = Metrics("test")
    part = {"fetch_state": "active", "committed_offset": 7, "stored_offset": -1001,
            "consumer_lag": 3, "consumer_lag_stored": -1}  # fmt: skip
    metrics.update_from_stats(stats({"0": part, "-1": {"fetch_state": "none"}}))
    assert value(metrics, "cdp_connector_consumer_lag", topic="clicks", partition="0") == 3
    assert value(metrics, "cdp_connector_committed_offset", topic="clicks", partition="0") == 7
    assert value(metrics, "cdp_connector_consumer_lag", topic="clicks", partition="-1") is None


def test_series_of_revoked_partitions_disappear() -> None:
    metrics = Metrics("test")
    part = {"fetch_state": "active", "committed_offset": 1, "consumer_lag": 0}
    metrics.update_from_stats(stats({"0": part, "1": part}))
    metrics.update_from_stats(stats({"1": part}))
    assert value(metrics, "cdp_connector_consumer_lag", topic="clicks", partition="0") is None
    assert value(metrics, "cdp_connector_consumer_lag", topic="clicks", partition="1") == 0


def test_outcome_counters_use_bound_children() -> None:
    metrics = Metrics("test")
    for _ in range(3):
        metrics.event_done("VIEW", "delivered")
        metrics.skipped("bots")
        metrics.dead_lettered("decode")
    assert value(metrics, "cdp_connector_events_total", type="VIEW", outcome="delivered") == 3
    assert value(metrics, "cdp_connector_records_skipped_total", rule="bots") == 3
    assert value(metrics, "cdp_connector_records_dead_lettered_total", stage="decode") == 3


def test_delivery_series_count_answers_latencies_and_records() -> None:
    metrics = Metrics("test")
    ok, busy = Answer(Outcome.DELIVERED, 201, "OK"), Answer(Outcome.RETRYABLE, 503, "busy")
    for answer, seconds in [(ok, 0.003), (ok, 0.05), (busy, 0.2), (NO_ANSWER, 40.0)]:
        metrics.answered("VIEW", answer, seconds)
    metrics.record_delivered()
    responses = "cdp_connector_http_responses_total"
    assert value(metrics, responses, **{"class": "2xx"}) == 2
    assert value(metrics, responses, **{"class": "5xx"}) == 1
    assert value(metrics, responses, **{"class": "error"}) == 1
    assert value(metrics, responses, **{"class": "4xx"}) == 0  # every class from the start
    latency = "cdp_connector_delivery_latency_seconds"
    assert value(metrics, f"{latency}_bucket", le="0.005") == 1
    assert value(metrics, f"{latency}_bucket", le="0.05") == 2  # le: a bound counts itself
    assert value(metrics, f"{latency}_bucket", le="30.0") == 3
    assert value(metrics, f"{latency}_bucket", le="+Inf") == 4
    assert value(metrics, f"{latency}_count") == 4
    assert value(metrics, f"{latency}_sum") == 0.003 + 0.05 + 0.2 + 40.0
    assert value(metrics, "cdp_connector_records_delivered_total") == 1
    metrics.event_done("ADD", "retried")
    assert value(metrics, "cdp_connector_events_total", type="ADD", outcome="retried") == 1
    assert value(metrics, "cdp_connector_events_created", type="ADD", outcome="retried")


def test_origin_keeps_coordinates_and_own_headers_and_counts_attempts() -> None:
    headers = [("trace", b"t1"), *error_headers("clicks", 2, 40, stage="map",
               exception="MappingError", message="no rule"), (REPLAY_ATTEMPTS, b"2")]  # fmt: skip
    origin = Origin.of(headers)
    assert (origin.topic, origin.partition, origin.offset, origin.attempts) == ("clicks", 2, 40, 2)
    assert origin.headers == [("trace", b"t1")]
    again = dict(origin.error_headers(stage="deliver", exception="X", message="m"))
    assert again[REPLAY_ATTEMPTS] == b"3"
    assert again["__connect.errors.offset"] == b"40"


def test_filter_by_header_expression_and_time_window() -> None:
    headers = error_headers("clicks", 0, 1, stage="deliver", exception="X", message="m", status=400)
    at = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1000)
    by_stage = RecordFilter(ReplayOptions(filter="\"cdp.errors.stage\" == 'deliver'"))
    assert by_stage.matches(at, headers)
    assert not RecordFilter(ReplayOptions(filter="\"cdp.errors.stage\" == 'map'")).matches(
        at, headers
    )
    window = RecordFilter(
        ReplayOptions(since=parse_time("2026-04-30"), until=parse_time("2026-05-02"))
    )
    assert window.matches(at, headers)
    assert not RecordFilter(ReplayOptions(since=parse_time("2026-05-01T00:00:01"))).matches(
        at, headers
    )


def test_a_never_committed_partition_has_lag_from_the_log_start() -> None:
    """librdkafka says -1 until the first commit; sum() must not leave the partition out."""
    metrics = Metrics("test")
    fresh = {"fetch_state": "active", "committed_offset": -1001, "consumer_lag": -1,
             "lo_offset": 2, "hi_offset": 40, "ls_offset": 40}  # fmt: skip
    unknown = {**fresh, "hi_offset": -1, "ls_offset": -1}
    metrics.update_from_stats(stats({"0": fresh, "1": unknown}))
    assert value(metrics, "cdp_connector_consumer_lag", topic="clicks", partition="0") == 38
    assert value(metrics, "cdp_connector_committed_offset", topic="clicks", partition="0") is None
    assert value(metrics, "cdp_connector_consumer_lag", topic="clicks", partition="1") is None


def test_topic_missing_has_a_series_per_subscribed_name() -> None:
    metrics = Metrics("test")
    metrics.topics_checked(["clicks", "orders"], ("orders",))
    assert value(metrics, "cdp_connector_topic_missing", topic="clicks") == 0
    assert value(metrics, "cdp_connector_topic_missing", topic="orders") == 1
    metrics.topics_checked(["clicks", "orders"], ())
    assert value(metrics, "cdp_connector_topic_missing", topic="orders") == 0


def test_readyz_shows_why_not_ready_and_what_is_degraded() -> None:
    state = RunState(subscribed=True, missing_topics=("orders",))
    state.degraded_reason = "schema registry http://r unreachable: refused"

    async def readyz() -> tuple[int, dict[str, object]]:
        app = build_app(state, Metrics("test"), lambda: None, lambda: None)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/readyz")
            return response.status, await response.json()

    status, body = asyncio.run(readyz())
    assert status == 503
    assert body["reasons"] == ["subscribed topics missing: orders"]
    assert body["degraded"] == ["schema registry http://r unreachable: refused"]


def test_brokers_up_reads_the_connection_states_of_a_statistics_report() -> None:
    def report(*states: str) -> str:
        brokers = {f"b{i}": {"nodeid": i, "state": s} for i, s in enumerate(states)}
        return json.dumps({"brokers": brokers, "topics": {}})

    assert not brokers_up(report("DOWN", "CONNECT"))
    assert brokers_up(report("DOWN", "UP"))
    assert not brokers_up(json.dumps({"topics": {}}))


def test_a_statistics_report_with_a_broker_up_ends_brokers_unreachable() -> None:
    state = RunState(subscribed=True, broker_down_since=1.0)
    down = json.dumps({"brokers": {"b1": {"state": "DOWN"}}, "topics": {}})
    on_stats(down, Metrics("test"), state)
    assert state.readiness() == (False, ["Kafka brokers unreachable"])
    on_stats(down.replace("DOWN", "UP"), Metrics("test"), state)
    assert state.readiness() == (True, [])
