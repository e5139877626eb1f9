"""What an operator sees during faults: warning lines, /readyz, metrics, and how soon the
connector resumes once the fault is gone. Real broker, registry and sandbox; the
connector runs as a subprocess with the default circuit settings (what is measured)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from connector.logs import error_key
from connector.sample_clickstream import sample_records
from scripts.services import kafka
from tests.integration.connector_proc import ConnectorFactory, ConnectorProcess, wait_for
from tests.integration.kafka_helpers import create_topic, describe_group
from tests.integration.streams import VIEW_ALL
from tests.integration.test_pipeline import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECOVERY_BOUND = 8.0  # seconds from the fault cleared to every record committed
# Long enough that probes and retries reach their ceiling: with the old ones (probes
# backing off to 60 s, registry retries to 30 s) resuming took 15 s and more.
OUTAGE_SECONDS = 20.0


def warnings(connector: ConnectorProcess) -> list[str]:
    """The connector's warning-and-above messages, in order (its log is JSON lines)."""
    found = []
    for line in connector.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["level"] in ("warning", "error", "critical"):
                found.append(entry["msg"])
    return found


def not_ready_because(connector: ConnectorProcess) -> list[str] | None:
    """/readyz's reasons when it answers 503; None when it answers 200."""
    status, body = connector.readyz()
    return None if status == 200 else list(body["reasons"])


def first(lines: list[str], prefix: str) -> int:
    """Index of the first line starting with ``prefix``; fails naming what was there."""
    for index, line in enumerate(lines):
        if line.startswith(prefix):
            return index
    raise AssertionError(f"no warning starts with {prefix!r}:\n" + "\n".join(lines))


def test_cdp_outage_warns_and_delivery_resumes_within_seconds(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique)
    # Default delivery settings: what is measured is what an operator gets.
    config = scenario.config(connector_factory, cdp_sandbox.url, mapping=VIEW_ALL)
    connector = connector_factory.start(config)
    scenario.produce(sample_records(30, guests=10, seed=41))
    scenario.caught_up()

    back = time.time() + OUTAGE_SECONDS  # the sandbox ends the outage by itself then
    cdp_sandbox.set_faults(outage_seconds=OUTAGE_SECONDS)
    scenario.produce(sample_records(100, guests=40, seed=42))
    wait_for(lambda: connector.metric("cdp_connector_paused") == 1, 30, "paused")
    scenario.caught_up(timeout=OUTAGE_SECONDS + 60)
    recovery = time.time() - back
    wait_for(lambda: connector.metric("cdp_connector_paused") == 0, 10, "resumed")

    lines = warnings(connector)
    opened = first(lines, "CDP circuit opened: 20 consecutive retryable failures, the last HTTP")
    paused = first(lines, "paused consumption: CDP circuit open: 20 consecutive")
    closed = first(lines, "CDP circuit closed after ")
    resumed = first(lines, "resumed consumption after ")
    assert opened < paused < closed < resumed, lines
    assert sum("CDP circuit opened" in line for line in lines) == 1  # failed probes: quiet
    print(f"recovery after the sandbox was back: {recovery:.1f}s")
    assert recovery < RECOVERY_BOUND, f"{recovery:.1f}s"
    assert connector.terminate() == 0
    scenario.registry_client.close()


class Gap:
    """A TCP forwarder to a real service that can go away and come back on its port:
    the service's network outage, as the connector sees it (connection refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.close()
        self._server = None
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed: down()
            upstream = socket.create_connection(self._target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()


def test_registry_down_shows_in_readyz_and_consumption_resumes_within_seconds(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique)
    host, port = schema_registry.url.split("//")[1].split("/")[0].split(":")
    gap = Gap((host, int(port)))
    path = schema_registry.url.split("//")[1].split("/", 1)[1]
    config = scenario.config(
        connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
        schema_registry={"url": f"{gap.url}/{path}", "timeout_seconds": 2},
    )  # fmt: skip
    gap.down()  # the connector has not seen a schema yet: it must ask the registry
    connector = connector_factory.start(config)
    scenario.produce(sample_records(20, guests=5, seed=43))

    def degraded() -> list[str]:
        return list(connector.readyz()[1]["degraded"])

    wait_for(lambda: any("schema registry" in r for r in degraded()), 30, "registry degraded")
    status, body = connector.readyz()
    assert status == 200, body  # a dependency waited out, like a CDP outage
    assert connector.metric("cdp_connector_paused") == 1
    time.sleep(OUTAGE_SECONDS)  # the outage itself: retries back off to their ceiling
    gap.up()
    back = time.monotonic()
    scenario.caught_up(timeout=60)
    recovery = time.monotonic() - back
    assert degraded() == []
    lines = warnings(connector)
    waits = [float(line.split()[2].rstrip("s:")) for line in lines
             if line.startswith("retrying in ")]  # fmt: skip
    assert len(waits) >= 4, lines
    assert max(waits) <= 5.0, waits  # a retry every few seconds, however long the outage
    paused = first(lines, "paused consumption: schema registry")
    resumed = first(lines, "resumed consumption after ")
    assert paused < resumed
    print(f"recovery after the registry was back: {recovery:.1f}s")
    assert recovery < RECOVERY_BOUND, f"{recovery:.1f}s"
    assert connector.terminate() == 0
    gap.down()
    scenario.registry_client.close()


def test_a_missing_topic_makes_the_connector_not_ready_until_it_exists(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique)
    missing = f"orders-{unique}"
    config = scenario.config(
        connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
        topics=[{"name": scenario.topic, "decoder": "confluent"},
                {"name": missing, "decoder": "confluent"}],
        # The consumer notices a new topic at its next metadata refresh (5 min default).
        kafka={"client": {"topic.metadata.refresh.interval.ms": 1000}},
    )  # fmt: skip
    connector = connector_factory.start(config)
    reason = f"subscribed topics missing: {missing}"
    wait_for(lambda: not_ready_because(connector) == [reason], 30, "not ready: topic missing")
    assert connector.metric("cdp_connector_topic_missing", topic=missing) == 1
    assert connector.metric("cdp_connector_topic_missing", topic=scenario.topic) == 0
    assert connector.metric("cdp_connector_ready") == 0
    scenario.produce(sample_records(10, guests=5, seed=44))
    scenario.caught_up()  # the topic that exists is read meanwhile

    create_topic(bootstrap, missing, 1)
    wait_for(lambda: not_ready_because(connector) is None, 30, "ready once the topic exists")
    assert connector.metric("cdp_connector_topic_missing", topic=missing) == 0
    assert any(line.startswith("subscribed topics found: ") for line in warnings(connector))
    assert connector.terminate() == 0
    scenario.registry_client.close()


def test_lag_series_exist_from_assignment_and_match_kafkas_tool(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> None:  # fmt: skip
    """A fresh group in an outage commits nothing: Kafka's tool shows no LAG ("-"), and
    every record of the partition is still to be delivered; the gauge counts them."""
    scenario = Scenario(bootstrap, schema_registry.url, unique)
    cdp_sandbox.set_faults(outage_seconds=3600)
    scenario.produce(sample_records(60, guests=20, seed=45))
    config = scenario.config(
        connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
        kafka={"client": {"statistics.interval.ms": 500}},
        # The outage's 503s say Retry-After: 3600; capped at the default ceiling (30 s)
        # every failed head would sleep that long after the outage is cleared.
        delivery={"retry": {"max_backoff_seconds": 0.5}},
    )  # fmt: skip
    connector = connector_factory.start(config)

    def gauges() -> dict[int, int]:
        found: dict[int, int] = {}
        for line in connector.metrics().splitlines():
            if line.startswith("cdp_connector_consumer_lag{") and scenario.topic in line:
                partition = int(line.split('partition="')[1].split('"')[0])
                found[partition] = int(float(line.rsplit(" ", 1)[1]))
        return found

    wait_for(lambda: connector.metric("cdp_connector_assigned_partitions") == 3, 30, "assigned")
    assigned = time.monotonic()
    wait_for(lambda: len(gauges()) == 3, 10, "a lag series per assigned partition")
    print(f"lag series {time.monotonic() - assigned:.1f}s after assignment")
    rows = {p: row for (t, p), row in describe_group(bootstrap, scenario.group).items()
            if t == scenario.topic}  # fmt: skip
    assert {p: row.current_offset for p, row in rows.items()} == dict.fromkeys(range(3))
    assert gauges() == {p: row.log_end_offset for p, row in rows.items()}  # from offset 0
    assert sum(gauges().values()) == 60

    cdp_sandbox.clear_faults()
    scenario.caught_up()
    rows = {p: row for (t, p), row in describe_group(bootstrap, scenario.group).items()
            if t == scenario.topic}  # fmt: skip
    wait_for(lambda: gauges() == {p: row.lag for p, row in rows.items()}, 10, "gauges == LAG")
    assert set(gauges().values()) == {0}
    assert connector.terminate() == 0
    scenario.registry_client.close()


def test_a_broker_restart_logs_each_kafka_error_once_per_interval(
    tmp_path: Path, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> None:  # fmt: skip
    """Every client fails every reconnect while the broker is away; each failure used to
    be logged twice (librdkafka's line and "Kafka client error")."""
    broker = kafka.start_broker(tmp_path / "kafka", partitions=1)
    try:
        scenario = Scenario(broker.bootstrap, schema_registry.url, unique, partitions=1)
        config = scenario.config(
            connector_factory, cdp_sandbox.url, mapping=VIEW_ALL,
            kafka={"bootstrap_servers": broker.bootstrap},
        )  # fmt: skip
        connector = connector_factory.start(
            config,  # the outage is logged at ERROR, by us and by librdkafka
            expect_errors=[r"all Kafka brokers are down", r"Connect to .* failed"],
        )
        scenario.produce(sample_records(10, guests=5, seed=46))
        scenario.caught_up()
        before = len(connector.output().splitlines())

        broker.stop()
        wait_for(lambda: not_ready_because(connector) == ["Kafka brokers unreachable"], 30,
                 "brokers unreachable")  # fmt: skip
        time.sleep(OUTAGE_SECONDS)  # the outage itself: reconnects keep failing
        broker = kafka.resume_broker(tmp_path / "kafka")
        wait_for(lambda: not_ready_because(connector) is None, 60, "ready after the restart")

        outage = connector.output().splitlines()[before:]
        refused = [line for line in outage if "Connection refused" in line]
        keys = [error_key(json.loads(line)["msg"]) for line in refused]
        print(f"{len(outage)} log lines in the outage, {len(refused)} about refused connects")
        assert refused, outage
        assert len(keys) == len(set(keys)), refused  # each once: the outage < the interval
        scenario.produce(sample_records(10, guests=5, seed=47))
        scenario.caught_up()
        assert connector.terminate() == 0
        scenario.registry_client.close()
    finally:
        broker.stop()
