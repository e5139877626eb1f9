"""Shared plumbing for the local services: cache folder, ports, processes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServiceError(RuntimeError):
    """A local service could not be prepared or started; the message says why."""


def cache_dir() -> Path:
    """Where downloaded jars and built tools are kept, keyed by version."""
    root = os.environ.get("CDP_CONNECTOR_CACHE") or Path.home() / ".cache" / "cdp-connector"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_tool(name: str, why: str) -> str:
    """Return the path of an executable or fail with what is missing and why."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name!r} is not on PATH; it is needed to {why}")
    return path


# The ephemeral range to assume when the kernel's cannot be read (Linux's default).
EPHEMERAL_DEFAULT = (32768, 60999)
LOWEST_SERVICE_PORT = 10000
_pick = random.SystemRandom()  # tests seed the module's random; two suites must not agree


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes the local port of an outgoing connection from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


def free_port() -> int:
    """A loopback TCP port nobody uses right now, below the kernel's ephemeral range.

    The caller binds it later (a Kafka node seconds later, after its storage is formatted)
    or again after a restart. A port from bind(0) is an ephemeral one, which any outgoing
    connection on the machine may take meanwhile: a node of the test cluster failed to start
    with 'Address already in use' that way. Below the range only another free_port can
    pick it, at random among ~20,000.
    """
    low, _ = ephemeral_ports()
    # A kernel whose range starts below ~11,000 leaves no room under it: then the pick may
    # fall inside the range, as bind(0)'s always did.
    for _ in range(100):
        port = _pick.randrange(LOWEST_SERVICE_PORT, max(low, LOWEST_SERVICE_PORT + 1000))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServiceError(f"no free loopback port between {LOWEST_SERVICE_PORT} and {low}")


def ensure_port_free(port: int, what: str) -> None:
    """Fail unless ``port`` can be listened on: taken by a listener, not by TIME_WAIT.

    SO_REUSEADDR, as the JVM's server sockets set it, lets a bind succeed beside the
    TIME_WAIT connections a just-stopped broker leaves for a minute, and still fails
    while anything listens on the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServiceError(f"port {port} for the {what} is already in use") from exc


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    timeout: float,
    what: str,
    log: Path,
) -> None:
    """Poll ``ready`` until it is true; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(
                f"{what} exited with code {proc.returncode} while starting; "
                f"last lines of {log}:\n{log_tail(log)}"
            )
        if ready():
            return
        time.sleep(0.3)
    stop_process(proc.pid)
    raise ServiceError(
        f"{what} not ready after {timeout:.0f}s; last lines of {log}:\n{log_tail(log)}"
    )


def stop_process(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group started for a service, SIGKILL it after ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def pid_alive(pid: int) -> bool:
    # A zombie (our own exited child) still answers kill(0); reap it first.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def spawn(cmd: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a service in its own process group, stdout and stderr to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - fixed argv built by this module
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )


@dataclass
class Service:
    """A service process started by these scripts: its process, port and log."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc.pid)
        self.proc.wait(timeout=5)


class Background:
    """Where a service started in the background keeps its pid and address, for the
    ``status`` and ``stop`` commands of the scripts that share this shape."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._pid = state_dir / "pid"
        self._address = state_dir / "address"

    def running(self) -> str | None:
        """The address line of the running service, or None."""
        if self._pid.exists() and pid_alive(int(self._pid.read_text())):
            return self._address.read_text().strip()
        return None

    def record(self, pid: int, address: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._pid.write_text(str(pid))
        self._address.write_text(address + "\n")

    def status(self) -> int:
        address = self.running()
        if address is None:
            print("not running")
            return 1
        print(f"running (pid {self._pid.read_text()}) {address}")
        return 0

    def stop(self) -> int:
        if not self._pid.exists():
            print("not running")
            return 0
        stop_process(int(self._pid.read_text()))
        self._pid.unlink()
        print("stopped")
        return 0
