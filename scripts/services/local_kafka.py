"""The ``scripts/local-kafka`` and ``scripts/kafka-tool`` command line: a broker (or a
cluster of three) in the background for the demo and by hand.

    python -m scripts.services.local_kafka start [--port P]   # prints bootstrap.servers=...
    python -m scripts.services.local_kafka start --nodes 3    # three nodes, RF 3, min ISR 2
    python -m scripts.services.local_kafka restart            # same ports, same data
    python -m scripts.services.local_kafka status
    python -m scripts.services.local_kafka stop
    python -m scripts.services.local_kafka tool CLASS-OR-NAME ARGS...
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.services.common import Background, ServiceError
from scripts.services.kafka import (
    STATE_DIR,
    TOOLS,
    Broker,
    java_cmd,
    require_python_deps,
    resume_broker,
    start_broker,
)
from scripts.services.kafka_cluster import start_cluster

# -- command line -------------------------------------------------------------


def _cmd_start(args: argparse.Namespace) -> int:
    background = Background(STATE_DIR)
    if (address := background.running()) is not None:
        print(f"already running: {address}")
        return 0
    require_python_deps()  # before the data of a previous run is wiped
    shutil.rmtree(STATE_DIR / "data", ignore_errors=True)
    if args.nodes > 1:
        if args.port is not None:
            raise ServiceError("--port is for one node; a cluster takes free ports")
        cluster = start_cluster(STATE_DIR / "data", args.nodes, partitions=args.partitions)
        return _started(background, list(cluster.nodes.values()))
    broker = start_broker(STATE_DIR / "data", port=args.port, partitions=args.partitions)
    return _started(background, [broker])


def _node_dirs() -> list[Path]:
    """The data folders of the nodes ``start`` made: one, or ``node-N`` per cluster node."""
    nodes = sorted((STATE_DIR / "data").glob("node-*"))
    return nodes or [STATE_DIR / "data"]


def _node_backgrounds() -> list[Background]:
    """Where each node's pid is kept: the first in ``STATE_DIR``, others in ``node-N``."""
    count = len(_node_dirs())
    return [Background(STATE_DIR)] + [Background(STATE_DIR / f"node-{i}") for i in
                                      range(2, count + 1)]  # fmt: skip


def _cmd_restart(_: argparse.Namespace) -> int:
    require_python_deps()  # a restart that cannot start must not stop the running broker
    for background in _node_backgrounds():
        if background.running() is not None:
            background.stop()
    brokers = [resume_broker(path) for path in _node_dirs()]
    return _started(Background(STATE_DIR), brokers)


def _cmd_stop(_: argparse.Namespace) -> int:
    for background in reversed(_node_backgrounds()):
        background.stop()
    return 0


def _started(background: Background, brokers: list[Broker]) -> int:
    bootstrap = ",".join(broker.bootstrap for broker in brokers)
    background.record(brokers[0].pid, f"bootstrap.servers={bootstrap}")
    for i, broker in enumerate(brokers[1:], start=2):
        Background(STATE_DIR / f"node-{i}").record(broker.pid, f"node {i}: {broker.bootstrap}")
    print(f"bootstrap.servers={bootstrap}")
    print(f"logs: {', '.join(str(broker.log) for broker in brokers)}", file=sys.stderr)
    return 0


def _cmd_tool(args: argparse.Namespace) -> int:
    cmd = java_cmd(TOOLS.get(args.tool, args.tool), *args.args, log_level="ERROR")
    return subprocess.run(cmd, check=False).returncode  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-kafka", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a broker in the background")
    start.add_argument("--port", type=int, default=None, help="listener port (default: free)")
    start.add_argument("--partitions", type=int, default=3, help="default partitions per topic")
    start.add_argument("--nodes", type=int, default=1, choices=(1, 3),
                       help="1 (default) or 3 nodes on loopback: replication factor 3 and "
                       "min.insync.replicas=2 for every topic")  # fmt: skip
    start.set_defaults(func=_cmd_start)
    restart = sub.add_parser("restart", help="restart the background broker(s), keeping data")
    restart.set_defaults(func=_cmd_restart)
    status = sub.add_parser("status", help="is the background broker running")
    status.set_defaults(func=lambda _: Background(STATE_DIR).status())
    stop = sub.add_parser("stop", help="stop the background broker")
    stop.set_defaults(func=_cmd_stop)
    tool = sub.add_parser("tool", help=f"run a Kafka tool: {', '.join(TOOLS)} or a class name")
    tool.add_argument("tool")
    tool.add_argument("args", nargs=argparse.REMAINDER)
    tool.set_defaults(func=_cmd_tool)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ServiceError as exc:
        print(f"local-kafka: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
