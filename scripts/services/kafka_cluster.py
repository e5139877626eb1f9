"""Three Kafka nodes on loopback (KRaft, each broker and controller) for failover tests.

Every topic keeps three copies and needs two in sync to accept an ``acks=all`` write
(``default.replication.factor=3``, ``min.insync.replicas=2``, the consumer-offsets and
transaction topics too), so a leader, the group coordinator and the dead-letter and
browser-id topics can all move to another node when one stops. The brokers keep their
own defaults otherwise: a node killed with ``kill -9`` is fenced after
``broker.session.timeout.ms`` (9 s); one stopped with SIGTERM hands its leaderships over
first (a rolling restart).

``start_cluster`` returns a ``Cluster``: ``kill`` (SIGKILL), ``stop_node`` (SIGTERM,
controlled shutdown), ``restart`` (same ports and data), ``leaders``, ``coordinator``,
``wait_in_sync``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.services import kafka
from scripts.services.common import ServiceError, free_port, stop_process, wait_until

#: Heap per node: three JVMs share a 2-core, few-GB machine with the tests.
CLUSTER_HEAP = "384m"
NODES = 3


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


@dataclass
class Cluster:
    """Nodes started by ``start_cluster``: node id → its broker (its process may be
    down after ``kill`` or ``stop_node`` until ``restart``)."""

    data_dir: Path
    nodes: dict[int, kafka.Broker]
    heap: str = CLUSTER_HEAP
    down: set[int] = field(default_factory=set)
    starting: set[int] = field(default_factory=set)

    @property
    def bootstrap(self) -> str:
        """Every node's address, as a client's ``bootstrap.servers``."""
        return ",".join(node.bootstrap for node in self.nodes.values())

    def _up_bootstrap(self) -> str:
        return ",".join(n.bootstrap for i, n in self.nodes.items() if i not in self.down)

    def kill(self, node_id: int) -> None:
        """``kill -9`` a node: no controlled shutdown, its leaderships stay until the
        controller fences it (``broker.session.timeout.ms``)."""
        node = self.nodes[node_id]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.proc.wait(timeout=10)
        self.down.add(node_id)

    def stop_node(self, node_id: int) -> None:
        """SIGTERM a node: it hands its leaderships over, then exits."""
        node = self.nodes[node_id]
        stop_process(node.pid, grace=60)
        node.proc.wait(timeout=10)
        self.down.add(node_id)

    def restart(self, node_id: int, *, wait: bool = True) -> None:
        """Start a stopped node again with its ports and data; returns once it serves
        metadata (its replicas catch up afterwards: ``wait_in_sync``), or at once with
        ``wait=False`` (``wait_started`` waits for it)."""
        data = self.data_dir / f"node-{node_id}"
        self.nodes[node_id] = kafka.resume_broker(data, self.heap, wait=wait)
        self.down.discard(node_id)
        if not wait:
            self.starting.add(node_id)

    def wait_started(self) -> None:
        """Until every node ``restart(wait=False)`` started serves metadata."""
        while self.starting:
            kafka.wait_ready(self.nodes[self.starting.pop()])

    def metadata(self, topic: str | None = None) -> Any:
        return _admin(self._up_bootstrap()).list_topics(topic, timeout=10)

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition → the node leading it (-1: none right now)."""
        partitions = self.metadata(topic).topics[topic].partitions
        return {p: meta.leader for p, meta in partitions.items()}

    def coordinator(self, group: str) -> int:
        """The node coordinating ``group`` (the leader of its consumer-offsets partition)."""
        admin = _admin(self._up_bootstrap())  # held until the answer: its end fails the future
        future = admin.describe_consumer_groups([group])[group]
        return int(future.result(timeout=5).coordinator.id)

    def in_sync(self, topics: list[str]) -> bool:
        """Every partition of ``topics`` and of the consumer-offsets topic (once a group
        made it) has a leader and all its replicas in sync."""
        meta = self.metadata()
        wanted = [*topics, *(["__consumer_offsets"] if "__consumer_offsets" in meta.topics else [])]
        for name in wanted:
            topic = meta.topics.get(name)
            if topic is None or topic.error is not None:
                return False
            for part in topic.partitions.values():
                if part.leader < 0 or len(part.isrs) < len(part.replicas):
                    return False
        return True

    def wait_in_sync(self, topics: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a node still starting: ask again
                if self.in_sync(topics):
                    return
            time.sleep(0.3)
        raise ServiceError(f"replicas of {topics} not in sync after {timeout:.0f}s")

    def discard(self) -> None:
        """Kill every node: for a cluster whose data is thrown away (a controlled shutdown
        of three nodes one after another takes ~20 s)."""
        for node_id in sorted(set(self.nodes) - self.down):
            self.kill(node_id)


def _ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _registered(bootstrap: str, nodes: int) -> bool:
    try:
        return len(_admin(bootstrap).list_topics(timeout=1.0).brokers) >= nodes
    except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
        return False


def start_cluster(
    data_dir: Path, nodes: int = NODES, partitions: int = 3, heap: str = CLUSTER_HEAP
) -> Cluster:
    """Format and start ``nodes`` combined broker/controller nodes in ``data_dir/node-N``;
    return once every node serves metadata naming all of them."""
    kafka.require_python_deps()
    ports = _ports(2 * nodes)
    client_ports, controller_ports = ports[:nodes], ports[nodes:]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(controller_ports))
    cluster_id = kafka.new_cluster_id()
    props: dict[int, Path] = {}
    for i in range(nodes):
        node_dir = data_dir / f"node-{i + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        quorum = kafka.Quorum(i + 1, voters, replicas=min(3, nodes), min_isr=min(2, nodes))
        props[i + 1] = node_dir / "server.properties"
        props[i + 1].write_text(kafka.server_properties(
            client_ports[i], controller_ports[i], node_dir, partitions, quorum=quorum))  # fmt: skip

    def format_storage(path: Path) -> None:
        kafka.run_tool("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(path),
                       "--ignore-formatted")  # fmt: skip

    with ThreadPoolExecutor(nodes) as pool:
        list(pool.map(format_storage, props.values()))
    started: dict[int, kafka.Broker] = {}
    try:
        for i, path in props.items():  # all at once: none serves before the quorum forms
            started[i] = kafka.Broker(kafka.spawn_broker(path, heap), client_ports[i - 1],
                                      path.with_name("server.log"), controller_ports[i - 1],
                                      path.parent)  # fmt: skip
        for broker in started.values():
            wait_until(lambda b=broker: _registered(b.bootstrap, nodes), broker.proc,  # type: ignore[misc]
                       kafka.START_TIMEOUT, f"Kafka node on {broker.port}", broker.log)  # fmt: skip
    except BaseException:
        for broker in started.values():
            stop_process(broker.pid)
        raise
    return Cluster(data_dir, started, heap)
