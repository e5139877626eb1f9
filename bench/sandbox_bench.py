"""Requests/s the CDP sandbox answers, with and without payload validation.

    PYTHONPATH=. python bench/sandbox_bench.py [--seconds 3] [--concurrency 32]

Starts the sandbox as a subprocess (as the tests do) and loads it with an aiohttp
client in this process (uvloop if installed), then with ``wrk`` if it is on PATH
(C, so the figure is the server's, not the client's). On a 2-core box the client
and the server share the CPU, so the aiohttp figure is a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from connector.cdp import get_dialect
from tests.fixtures_sandbox import (
    API_TOKEN,
    CLIENT_KEY,
    SandboxProcess,
    start_sandbox,
    stop_sandbox,
)

EVENT = {
    "channel": "WEB",
    "type": "ORDER_CHECKOUT",
    "browser_id": "56860bff-94ba-4d84-aa37-2b5a83d5411b",
    "session_id": "0b0a2c1e-7a36-4a51-9e2f-8f7f2b7b0d11",
    "pos": "shop.example.com",
    "currency": "EUR",
    "language": "EN",
    "page": "https://shop.example.com/checkout",
    "reference_id": "ORD-1",
    "total_price": 119.8,
    "status": "CONFIRMED",
    "ordered_at": "2026-11-26T10:00:00Z",
    "items": [{"sku": "SKU-123", "quantity": 2, "price": 59.9}],
    "ext": {"campaign": "winter", "firstOrder": True},
}
BODY = get_dialect("asyncapi").validate_and_dump(EVENT)
AUTH = "Basic " + base64.b64encode(f"{CLIENT_KEY}:{API_TOKEN}".encode()).decode()


async def aiohttp_load(url: str, seconds: float, concurrency: int) -> tuple[float, dict[int, int]]:
    counts: dict[int, int] = {}
    headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                async with session.post(url, data=BODY) as response:
                    await response.read()
                    counts[response.status] = counts.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return sum(counts.values()) / elapsed, counts


def wrk_load(url: str, seconds: float, concurrency: int, tmp: Path) -> str:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(BODY.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "{AUTH}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = next(line for line in out.splitlines() if "Requests/sec" in line).split()[-1]
    non2xx = [line.strip() for line in out.splitlines() if "Non-2xx" in line]
    return f"{float(rps):,.0f} req/s" + (f" ({non2xx[0]})" if non2xx else "")


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc): robust to a busy shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_served(sandbox: SandboxProcess) -> int:
    return int(sandbox.stats()["requests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"body {len(BODY)} bytes, {args.concurrency} connections, {args.seconds:g} s per run")
    for label, extra in (("validate", ()), ("--no-validate", ("--no-validate",))):
        with tempfile.TemporaryDirectory() as tmp:
            sandbox = start_sandbox(Path(tmp), *extra, spec=False)
            try:
                url = sandbox.event_url
                pid = sandbox.process.pid
                cpu0, n0 = cpu_seconds(pid), requests_served(sandbox)
                try:
                    import uvloop

                    rps, counts = uvloop.run(aiohttp_load(url, args.seconds, args.concurrency))
                except ImportError:
                    rps, counts = asyncio.run(aiohttp_load(url, args.seconds, args.concurrency))
                print(f"{label:14} aiohttp client: {rps:,.0f} req/s {counts}")
                if shutil.which("wrk"):
                    wrk = wrk_load(url, args.seconds, args.concurrency, Path(tmp))
                    print(f"{label:14} wrk -t1:        {wrk}")
                per_request = (cpu_seconds(pid) - cpu0) / (requests_served(sandbox) - n0)
                print(
                    f"{label:14} server CPU:     {per_request * 1e6:.0f} µs/request"
                    f" → ~{1 / per_request:,.0f} req/s on one free core"
                )
            finally:
                stop_sandbox(sandbox)


if __name__ == "__main__":
    main()
