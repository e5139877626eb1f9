"""The CDP sandbox as a pytest fixture: a real subprocess on a free loopback port.

``cdp_sandbox_server`` (session) starts ``python -m connector sandbox --port 0`` once;
``cdp_sandbox`` (function) resets its faults, records and stats before each test, and
reseeds its random faults (so a fault sequence does not depend on which tests ran before).
The asyncapi sandbox validates bodies with the spec's own JSON schemas (``--spec``), not
with the connector's models, so a model bug shows up as a refused event.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.sample_clickstream import SITES

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC = REPO_ROOT / "tests" / "unit" / "fixtures" / "cdp-stream-api.asyncapi.yaml"
CLIENT_KEY = "sandbox-client-key"
API_TOKEN = "sandbox-api-token-s3cret"  # noqa: S105 - a test credential for the sandbox


class SandboxProcess:
    """A running sandbox: its URL, credentials and admin API (blocking, urllib)."""

    def __init__(self, process: subprocess.Popen[str], url: str, record_file: Path) -> None:
        self.process = process
        self.url = url
        self.client_key = CLIENT_KEY
        self.api_token = API_TOKEN
        self.record_file = record_file

    @property
    def event_url(self) -> str:
        return self.url + "/v1.2/event/create.json"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - http://127.0.0.1 only
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def records(self, type: str | None = None) -> list[dict[str, Any]]:
        """Accepted events with their ``ref`` and ``received_at``, oldest first."""
        query = "" if type is None else f"?type={type}"
        return list(self._call("GET", "/_sandbox/events" + query)["events"])

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Accepted event payloads, oldest first (optionally of one type)."""
        return [record["event"] for record in self.records(type)]

    def stats(self) -> dict[str, Any]:
        """``{"requests", "accepted", "by_status": {"201": n, ...}, "by_type": {...}}``."""
        return dict(self._call("GET", "/_sandbox/stats"))

    def requests(self, browser_id: str | None = None) -> list[dict[str, Any]]:
        """Event requests, oldest first: ``seq``, ``start``/``end`` (wall clock),
        ``browser_id``, ``type``, ``status`` ("201", "503", ... or "none": no answer)."""
        query = "" if browser_id is None else f"?browser_id={browser_id}"
        return list(self._call("GET", "/_sandbox/requests" + query)["requests"])

    def overlapping_guests(self) -> list[str]:
        """Guests that had two requests open at once (breaks per-guest ordering)."""
        return list(self.stats()["overlapping_guests"])

    def first_deliveries(
        self, key: Callable[[dict[str, Any]], Hashable]
    ) -> dict[str, list[Hashable]]:
        """Per guest, ``key(event)`` of each distinct accepted event in the order it was
        first accepted (a redelivery of an earlier event does not count again)."""
        order: dict[str, list[Hashable]] = {}
        seen: set[tuple[str, Hashable]] = set()
        for event in self.events():
            guest, k = str(event.get("browser_id")), key(event)
            if (guest, k) not in seen:
                seen.add((guest, k))
                order.setdefault(guest, []).append(k)
        return order

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sandbox/faults"))

    def set_faults(self, *, replace: bool = False, **faults: Any) -> dict[str, Any]:
        """Change the given faults (``replace=True``: all others back to none)."""
        return dict(self._call("PUT" if replace else "POST", "/_sandbox/faults", faults))

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def reset(self, seed: int | None = None) -> None:
        """Forget events, requests and stats; faults back to the start-up ones; random
        faults reseeded with ``seed`` (default: the start-up ``--seed``)."""
        self._call("POST", "/_sandbox/reset", {} if seed is None else {"seed": seed})


def start_sandbox(
    tmp: Path, *extra: str, spec: bool = True, timeout: float = 15.0
) -> SandboxProcess:
    """Start a sandbox subprocess and wait until it answers.

    An asyncapi sandbox (no ``--dialect``) validates with the spec's schemas (``--spec``)
    unless ``spec=False`` (the connector's own models) or ``extra`` has ``--no-validate``.
    """
    validation = ["--spec", str(SPEC)]
    if not spec or {"--dialect", "--no-validate"} & set(extra):
        validation = []
    record_file = tmp / "events.jsonl"
    stderr = (tmp / "sandbox.stderr").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector",
            "sandbox",
            "--port",
            "0",
            "--client-key",
            CLIENT_KEY,
            "--api-token",
            API_TOKEN,
            "--record-file",
            str(record_file),
            "--seed",
            "7",
            *validation,
            *extra,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    stderr.close()
    assert process.stdout is not None
    line = process.stdout.readline()  # "cdp-sandbox listening on http://127.0.0.1:PORT"
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"sandbox did not start: {(tmp / 'sandbox.stderr').read_text()}")
    sandbox = SandboxProcess(process, line.strip().rsplit(" ", 1)[1], record_file)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sandbox.stats()
            return sandbox
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def stop_sandbox(sandbox: SandboxProcess) -> None:
    sandbox.process.terminate()
    try:
        sandbox.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        sandbox.process.wait()
    if sandbox.process.stdout is not None:
        sandbox.process.stdout.close()


@pytest.fixture(scope="session")
def cdp_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox process for the whole session."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("cdp-sandbox"))
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture
def cdp_sandbox(cdp_sandbox_server: SandboxProcess) -> SandboxProcess:
    """The session's sandbox with no faults, no recorded events and zeroed stats."""
    cdp_sandbox_server.reset()
    return cdp_sandbox_server


#: The points of sale the sitecore sandbox knows (the sample data's sites).
KNOWN_POS = SITES


@pytest.fixture(scope="session")
def cdp_sitecore_sandbox_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SandboxProcess]:
    """A sandbox validating the sitecore dialect that knows only ``KNOWN_POS``."""
    sandbox = start_sandbox(
        tmp_path_factory.mktemp("cdp-sitecore-sandbox"),
        "--dialect",
        "sitecore",
        "--known-pos",
        ",".join(KNOWN_POS),
    )
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture
def cdp_sitecore_sandbox(cdp_sitecore_sandbox_server: SandboxProcess) -> SandboxProcess:
    """The sitecore sandbox, reset (no faults, events or stats)."""
    cdp_sitecore_sandbox_server.reset()
    return cdp_sitecore_sandbox_server
