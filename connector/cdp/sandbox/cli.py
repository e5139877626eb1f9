"""``cdp-connector sandbox``: the command line and the server loop of the CDP sandbox."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import uvloop
from aiohttp import web

from connector.cdp.dialect import get_dialect
from connector.cdp.sandbox.app import build_app
from connector.cdp.sandbox.faults import Faults
from connector.cdp.sandbox.server import DEFAULT_MAX_BODY, Sandbox
from connector.cdp.sandbox.spec import SpecValidator
from connector.errors import ConfigError

__all__ = ["add_arguments", "faults_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sandbox`` subcommand's flags."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--client-key", required=True)
    parser.add_argument("--api-token", required=True)
    parser.add_argument(
        "--dialect", default="asyncapi", help="payload models to validate with (asyncapi, sitecore)"
    )
    parser.add_argument(
        "--known-pos",
        help="comma-separated points of sale; events for any other are answered 201 and dropped",
    )
    parser.add_argument("--no-validate", action="store_true", help="only check JSON object")
    parser.add_argument(
        "--spec",
        type=Path,
        help="validate with this AsyncAPI document's JSON schemas instead of the models "
        "(asyncapi dialect; needs jsonschema, a dev extra)",
    )
    parser.add_argument("--record-file", type=Path, help="append accepted events as JSONL")
    parser.add_argument("--max-records", type=int, default=1_000_000, help="kept in memory")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument("--seed", type=int, help="RNG seed for random faults")
    faults = parser.add_argument_group("faults (change at run time: /_sandbox/faults)")
    faults.add_argument("--latency-ms", type=float, default=0.0)
    faults.add_argument("--latency-jitter-ms", type=float, default=0.0)
    faults.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    faults.add_argument("--error-status", type=int, default=503)
    faults.add_argument("--rate-429", type=float, default=0.0, help="share of 429 answers")
    faults.add_argument("--retry-after", type=float, default=1.0, help="seconds, on 429")
    faults.add_argument("--retry-after-http-date", action="store_true")
    faults.add_argument("--max-rps", type=float, help="hard ceiling; above it 429")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped conns")
    faults.add_argument("--outage-seconds", type=float, help="outage from start, this long")
    faults.add_argument("--outage-mode", choices=["503", "drop"], default="503")
    faults.add_argument("--auth-fail", action="store_true", help="401 for every event")


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The start-up faults given on the command line."""
    return Faults(
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        error_rate=args.error_rate,
        error_status=args.error_status,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        retry_after_http_date=args.retry_after_http_date,
        max_rps=args.max_rps,
        drop_rate=args.drop_rate,
        outage_until=None if args.outage_seconds is None else time.time() + args.outage_seconds,
        outage_mode=args.outage_mode,
        auth_fail=args.auth_fail,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; prints ``cdp-sandbox listening on <url>`` when ready."""
    spec = None
    if args.spec is not None:
        if args.no_validate or args.dialect != "asyncapi":
            raise ConfigError("--spec validates the asyncapi dialect; not with --no-validate")
        spec = SpecValidator(args.spec)
    sandbox = Sandbox(
        args.client_key,
        args.api_token,
        dialect=None if args.no_validate else get_dialect(args.dialect),
        faults=faults_from_args(args),
        seed=args.seed,
        record_file=args.record_file,
        max_records=args.max_records,
        known_pos=frozenset(p.strip() for p in args.known_pos.split(",") if p.strip())
        if args.known_pos
        else None,
        spec=spec,
    )
    uvloop.run(_serve(sandbox, args.host, args.port, args.max_body_bytes))
    return 0


async def _serve(sandbox: Sandbox, host: str, port: int, max_body_bytes: int) -> None:
    # handler_cancellation: a request whose client went away (timeout) is not recorded later.
    runner = web.AppRunner(
        build_app(sandbox, max_body_bytes=max_body_bytes),
        access_log=None,
        handler_cancellation=True,
        # get-query events live in the request line; let the client's limit be the one
        # that matters (connector.cdp.transport.MAX_GET_URL_BYTES), not aiohttp's 8 KiB.
        max_line_size=64 * 1024,
    )
    await runner.setup()
    sandbox.open_record_file()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0]
        print(f"cdp-sandbox listening on http://{bound[0]}:{bound[1]}", flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                sandbox.flush()  # keep the JSONL file current without a flush per event
    finally:
        await runner.cleanup()
        sandbox.close()
        sys.stdout.flush()
