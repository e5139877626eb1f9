"""A real schema registry: Apicurio Registry (in-memory) from Maven Central.

Its Confluent-compatible API (``/apis/ccompat/v7``) is what the connector and
confluent-kafka's ``SchemaRegistryClient`` speak. Runs on the machine's default Java 17.

Command line (``scripts/local-registry`` calls this)::

    python -m scripts.services.registry start [--port P]   # prints schema.registry.url=...
    python -m scripts.services.registry status
    python -m scripts.services.registry stop
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from scripts.services.common import (
    REPO_ROOT,
    Background,
    Service,
    ServiceError,
    cache_dir,
    ensure_port_free,
    free_port,
    require_tool,
    spawn,
    wait_until,
)

APICURIO_VERSION = os.environ.get("APICURIO_VERSION", "2.6.13.Final")
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
CCOMPAT_PATH = "/apis/ccompat/v7"
STATE_DIR = REPO_ROOT / ".local" / "registry"  # where `start` keeps pid, url and log
START_TIMEOUT = 90.0


def ensure_app() -> Path:
    """Download and unpack Apicurio once per version; return the runner jar."""
    home = cache_dir() / f"apicurio-{APICURIO_VERSION}"
    jar = home / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
    marker = home / ".complete"
    if marker.exists() and jar.exists():
        return jar
    require_tool("java", "run the schema registry (install a JDK 17+)")
    mvn = require_tool("mvn", "fetch Apicurio Registry from Maven Central (install Maven)")
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}",
           f"-DoutputDirectory={staging}"]  # fmt: skip
    # Maven wants a project-less folder; run it in the staging one.
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=staging)  # noqa: S603
    if result.returncode != 0:
        raise ServiceError(f"Maven could not fetch {ARTIFACT}:\n{result.stdout}{result.stderr}")
    tarball = staging / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
    with tarfile.open(tarball) as archive:
        archive.extractall(staging, filter="data")
    tarball.unlink()
    # The tarball may wrap everything in one folder; the jar is what we need at the top.
    if not (staging / jar.name).exists():
        found = next(staging.rglob(jar.name), None)
        if found is None:
            raise ServiceError(f"{jar.name} not found in {ARTIFACT}")
        for item in found.parent.iterdir():
            item.rename(staging / item.name)
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    marker.touch()
    return jar


class Registry(Service):
    """A running schema registry started by this module."""

    @property
    def url(self) -> str:
        """Base URL of the Confluent-compatible API (what SchemaRegistryClient takes)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:  # noqa: S310 - loopback URL we built
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_registry(work_dir: Path, port: int | None = None, heap: str = "384m") -> Registry:
    """Start Apicurio (in-memory storage) on loopback; return once the ccompat API answers."""
    if port is not None:
        ensure_port_free(port, "schema registry")
    port = port or free_port()
    jar = ensure_app()
    java = require_tool("java", "run the schema registry (install a JDK 17+)")
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / "registry.log"
    cmd = [
        java, f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={port}",
        "-Dquarkus.log.level=WARN", "-Dquarkus.analytics.disabled=true",
        "-jar", str(jar),
    ]  # fmt: skip
    # cwd is work_dir: Quarkus may write files relative to it.
    proc = spawn(cmd, log, cwd=work_dir)
    registry = Registry(proc, port, log)
    wait_until(lambda: _answers(registry.url), proc, START_TIMEOUT, "schema registry", log)
    return registry


# -- command line -------------------------------------------------------------


def _cmd_start(args: argparse.Namespace) -> int:
    background = Background(STATE_DIR)
    if (address := background.running()) is not None:
        print(f"already running: {address}")
        return 0
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    registry = start_registry(STATE_DIR, port=args.port)
    background.record(registry.pid, f"schema.registry.url={registry.url}")
    print(f"schema.registry.url={registry.url}")
    print(f"logs: {registry.log}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-registry", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a registry in the background")
    start.add_argument("--port", type=int, default=None, help="HTTP port (default: free)")
    start.set_defaults(func=_cmd_start)
    status = sub.add_parser("status", help="is the background registry running")
    status.set_defaults(func=lambda _: Background(STATE_DIR).status())
    stop = sub.add_parser("stop", help="stop the background registry")
    stop.set_defaults(func=lambda _: Background(STATE_DIR).stop())
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ServiceError as exc:
        print(f"local-registry: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
