"""Brokers stop under a running connector: a three-node cluster, the connector as a
subprocess, every record counted at the sandbox.

Each scenario streams records at a steady rate while a node is killed (``kill -9``) or
stopped (SIGTERM: a rolling restart) and asserts that nothing is lost, posted twice or
dead-lettered and that every partition delivers again after the change. Each prints
the freshness of every record after the broker appended it (p50, p99, max, and the
records over 2 s); docs/operations.md keeps the figures. Timings are not asserted:
the machine is shared.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException

from scripts.services.kafka_cluster import Cluster
from tests.integration.connector_proc import (
    ConnectorFactory,
    ConnectorProcess,
    wait_caught_up,
    wait_for,
)
from tests.integration.failover_helpers import (
    DurableWriters,
    Freshness,
    LiveStream,
    ReadinessWatch,
    duplicates,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.cluster]

#: The longest a stream runs; each test stops it a few seconds after its last change.
STREAM_SECONDS = 90.0
#: librdkafka logs a failed connection to a stopped node at ERROR (its level 3): refused,
#: or reset when the connect meets the node as its socket closes (seen killing the
#: coordinator: "Connection reset by peer (after 4ms in state CONNECT)").
NODE_DOWN = r"Connect to ipv4#127\.0\.0\.1:\d+ failed: Connection (refused|reset by peer)"
#: Records streamed before the first change, and after the last one (every partition
#: has to deliver again).
BEFORE_SECONDS = 2.0
AFTER_SECONDS = 2.0


@pytest.fixture
def cluster(kafka_cluster: Cluster) -> Iterator[Cluster]:
    """The session's cluster with all three nodes up; nodes a test stopped are started
    again afterwards, whatever the outcome, so the next test finds them all."""
    yield kafka_cluster
    for node_id in sorted(kafka_cluster.down):
        kafka_cluster.restart(node_id, wait=False)
    kafka_cluster.wait_started()
    kafka_cluster.wait_in_sync([])


@pytest.fixture
def connectors(tmp_path: Path, cluster: Cluster, cdp_sandbox: Any) -> Iterator[ConnectorFactory]:
    env = {"CDP_CLIENT_KEY": cdp_sandbox.client_key, "CDP_API_TOKEN": cdp_sandbox.api_token}
    factory = ConnectorFactory(tmp_path, cluster.bootstrap, env)
    yield factory
    problems = factory.teardown()
    if problems:
        pytest.fail("connector log problems:\n" + "\n".join(problems), pytrace=False)


def _start(stream: LiveStream, connectors: ConnectorFactory, sandbox: Any) -> ConnectorProcess:
    connector = connectors.start(stream.config(connectors, sandbox.url), expect_errors=[NODE_DOWN])
    stream.start(STREAM_SECONDS)
    stream.readiness = ReadinessWatch(connector)
    return connector


def _finish(
    name: str, stream: LiveStream, connector: ConnectorProcess, sandbox: Any, changed_at: float,
    moved: set[int] | None = None,
) -> Freshness:  # fmt: skip
    """Stream a little more, then wait for the group's commits; assert the outcome and
    print the freshness."""
    time.sleep(AFTER_SECONDS)
    stream.stop()
    stream.wait()
    assert stream.readiness is not None
    print(stream.readiness.report())
    cluster = stream.cluster
    wait_caught_up(cluster.bootstrap, stream.group, stream.topic, stream.partitions, 120)
    assert connector.proc.poll() is None, "the connector exited"
    appended, copies = stream.appended()
    events = sandbox.records()
    delivered = {str(e["event"]["ext"]["eventId"]) for e in events}
    freshness = Freshness.of(appended, events)
    freshness.dump(_run_dir(connector) / "freshness.csv")
    took_over = None if not moved else freshness.took_over(moved, changed_at)
    print(freshness.report(name, changed_at, took_over))
    assert len(appended) == stream.produced
    assert set(appended) - delivered == set(), "records lost"
    assert duplicates(events, copies) == 0
    assert connector.metric("cdp_connector_records_dead_lettered_total") == 0
    assert freshness.delivered_after(changed_at) == set(range(stream.partitions))
    return freshness


def _coordinator(cluster: Cluster, group: str) -> int | None:
    """The group's coordinator, or None while the cluster cannot say (it was just killed)."""
    try:
        return cluster.coordinator(group)
    except (KafkaException, TimeoutError):
        return None


def _run_dir(connector: ConnectorProcess) -> Path:
    """The test's own folder (the connector's config and log are there)."""
    return connector.log.parent


def _leading_most(cluster: Cluster, topic: str) -> int:
    return Counter(cluster.leaders(topic).values()).most_common(1)[0][0]


def _wait_led_elsewhere(cluster: Cluster, topic: str, node: int, timeout: float = 30) -> float:
    """Until no partition of ``topic`` names ``node`` as its leader; when that was seen."""
    wait_for(lambda: node not in cluster.leaders(topic).values(), timeout, "new leaders")
    return time.time()


def test_leader_node_killed_and_restarted_loses_nothing(
    cluster: Cluster, connectors: ConnectorFactory, cdp_sandbox: Any, unique: str
) -> None:
    """Also the dead-letter producer and the browser-id store, writing through the
    same crash to topics the killed node leads: every write acknowledged, once."""
    stream = LiveStream(cluster, unique)
    connector = _start(stream, connectors, cdp_sandbox)
    victim = _leading_most(cluster, stream.topic)
    moved = {p for p, node in cluster.leaders(stream.topic).items() if node == victim}
    writers = DurableWriters(cluster, unique, victim)
    writers.start()
    time.sleep(BEFORE_SECONDS)
    killed_at = time.time()
    cluster.kill(victim)
    moved_at = _wait_led_elsewhere(cluster, stream.topic, victim)
    print(f"node {victim} killed; its partitions led elsewhere {moved_at - killed_at:.1f} s later")
    cluster.restart(victim, wait=False)  # serving again by the end of the test (the fixture)
    writers.stop()
    print(writers.check())
    _finish("leader killed", stream, connector, cdp_sandbox, killed_at, moved)


def test_coordinator_node_killed_loses_nothing(
    cluster: Cluster, connectors: ConnectorFactory, cdp_sandbox: Any, unique: str
) -> None:
    stream = LiveStream(cluster, unique)
    connector = _start(stream, connectors, cdp_sandbox)
    time.sleep(BEFORE_SECONDS)
    victim = cluster.coordinator(stream.group)
    moved = {p for p, node in cluster.leaders(stream.topic).items() if node == victim}
    killed_at = time.time()
    cluster.kill(victim)
    wait_for(lambda: _coordinator(cluster, stream.group) not in (victim, None), 30,
             "a new coordinator")  # fmt: skip
    print(f"coordinator node {victim} killed; a new one {time.time() - killed_at:.1f} s later")
    cluster.restart(victim, wait=False)  # while the stream goes on
    _finish("coordinator killed", stream, connector, cdp_sandbox, killed_at, moved)


def test_rolling_restart_of_all_nodes_loses_nothing(
    cluster: Cluster, connectors: ConnectorFactory, cdp_sandbox: Any, unique: str
) -> None:
    stream = LiveStream(cluster, unique)
    connector = _start(stream, connectors, cdp_sandbox)
    time.sleep(BEFORE_SECONDS)
    first_stop = time.time()
    for node in sorted(cluster.nodes):
        cluster.stop_node(node)
        cluster.restart(node)
        cluster.wait_in_sync([stream.topic])
    _finish("rolling restart", stream, connector, cdp_sandbox, first_stop)
