"""CPU per request of ``CdpClient`` alone, per transport, against a local sink.

    PYTHONPATH=. .venv/bin/python -m bench.client_bench [--requests 20000]
        [--in-flight 256] [--latency-ms 0] [--transports post-basic,post-events,get-query]
        [--tls] [--nginx] [--parsers httptools,hand,h11] [--rounds 1]

Starts ``bench/latency_sink.py`` (``--tls``: with a self-signed certificate the client
trusts through ``SSL_CERT_FILE``; ``--nginx``: the e2e bench's nginx instead, no
latency), then per transport sends ``--requests`` ready event
bodies from ``--in-flight`` concurrent senders on uvloop and prints requests/s and the
process CPU µs per request (``time.process_time``; the sink runs in its own process).
No Kafka, no mapping: this isolates the HTTP path the connector's dispatcher calls.
``--parsers`` runs each transport once per response parser (``httptools``: the
client's own; ``hand``, ``h11``: ``bench/parsers.py``), ``--rounds`` times, interleaved,
so the spread between rounds is seen beside the difference between parsers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import uvloop

from bench.e2e_parts import (
    API_TOKEN,
    CLIENT_KEY,
    make_certificate,
    nginx_binary,
    start_latency_sink,
    start_nginx,
)
from bench.parsers import PARSERS
from connector.cdp import http1
from connector.cdp.client import CdpClient, Outcome
from connector.cdp.dialect import get_dialect
from scripts.services.common import REPO_ROOT

WORK = REPO_ROOT / ".local" / "client-bench"
EVENT = {
    "type": "VIEW", "channel": "WEB", "language": "EN", "currency": "EUR",
    "page": "home page", "pos": "shop.example.com",
    "browser_id": "a38b230c-11eb-4cf9-8d5d-274e9f344925",
    "ext": {"pageVariantId": "v-1"},
}  # fmt: skip


async def _measure(url: str, transport: str, requests: int, in_flight: int) -> tuple[float, float]:
    body = get_dialect("sitecore").validate_and_dump(EVENT)
    async with CdpClient(url, CLIENT_KEY, API_TOKEN, transport=transport,  # type: ignore[arg-type]
                         max_connections=in_flight) as client:  # fmt: skip
        for _ in range(2 * in_flight):  # warm: every connection open
            await client.send(body)
        left = requests
        failed = 0

        async def worker() -> None:
            nonlocal left, failed
            while left > 0:
                left -= 1
                if (await client.send(body)).outcome is not Outcome.DELIVERED:
                    failed += 1

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if failed:
        raise RuntimeError(f"{transport}: {failed} requests not delivered")
    return requests / wall, cpu / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--transports", default="post-basic,post-events,get-query")
    parser.add_argument("--tls", action="store_true", help="https with a self-signed certificate")
    parser.add_argument("--nginx", action="store_true", help="nginx 201 as the sink (no latency)")
    parser.add_argument("--parsers", default="httptools", help="httptools,hand,h11")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    cert: tuple[Path, Path] | None = make_certificate(WORK / "tls") if args.tls else None
    nginx = nginx_binary(install=False) if args.nginx else None
    if args.nginx and nginx is None:
        parser.error("--nginx: no nginx binary (scripts/bench installs nginx-light)")
    if nginx is not None:
        sink = start_nginx(nginx, WORK / "nginx", certificate=cert)
    else:
        sink = start_latency_sink(WORK / "sink", args.latency_ms, certificate=cert)
    if cert is not None:
        os.environ["SSL_CERT_FILE"] = str(cert[0])  # what the client's default context trusts
    try:
        parsers = {"httptools": http1.ResponseParser, **PARSERS}
        for _ in range(args.rounds):
            for transport in args.transports.split(","):
                for name in args.parsers.split(","):
                    http1._new_parser = parsers[name]
                    rate, cpu_us = uvloop.run(_measure(sink.url, transport, args.requests,
                                                       args.in_flight))  # fmt: skip
                    print(f"{transport:12} {'https' if cert else 'http':5} {name:9} in flight "
                          f"{args.in_flight}, {args.latency_ms:g} ms: {rate:8,.0f} requests/s, "
                          f"{cpu_us:5.1f} µs CPU per request", flush=True)  # fmt: skip
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
