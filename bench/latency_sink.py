"""A cheap HTTP sink that answers every request 201 after a fixed delay (scenario b).

    python -m bench.latency_sink --port P --latency-ms 50 [--cert C --key K] [--record F]
        [--stamps FILE]

nginx cannot delay an answer without extra modules, and the CDP sandbox (an aiohttp
server) spends ~150 µs of CPU per request, so at 256 in flight and 50 ms it tops out
near 4,000 requests/s on this machine, below the connector's 5,120/s bound. This is
a raw asyncio protocol on uvloop: HTTP/1.1 keep-alive, Content-Length bodies, no
validation, ~20 µs per request. With ``--cert``/``--key`` it serves HTTPS (the
HTTPS scenario: a self-signed certificate the connector trusts via ``SSL_CERT_FILE``).
With ``--record F`` (the steady-rate mode, bench/steady.py) it notes the wall time of
each answer against the sequence numbers the body carries (``~0000000042~``, put into
the records by the steady producer) and writes ``seq time`` lines to F on SIGTERM.
With ``--stamps`` it appends one line per answer, ``<unix time> <path>`` (as nginx's
access log does in the bench), written out every 0.2 s: the bench reads the gaps
between deliveries from it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import ssl
import time
from pathlib import Path
from typing import IO

import uvloop

ANSWER = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n"
    b'{"ref":"x","status":"OK"}\n'
)


MARK = re.compile(rb"~(\d{10})~")
ANSWERED: list[tuple[bytes, float]] = []  # (sequence number, answer time), --record only


class _Stamps:
    """Answer times and paths, written to a file every 0.2 s."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lines: list[str] = []

    def flush(self) -> None:
        if self.lines:
            self.out.write("".join(self.lines))
            self.out.flush()
            self.lines = []
        asyncio.get_running_loop().call_later(0.2, self.flush)


class _Sink(asyncio.Protocol):
    def __init__(self, delay: float, record: bool = False, stamps: _Stamps | None = None) -> None:
        self.delay = delay
        self.record = record
        self.stamps = stamps
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            marks = set(MARK.findall(self.buffer, 0, end + 4 + length)) if self.record else ()
            path = head.split(b" ", 2)[1] if self.stamps is not None else b""
            del self.buffer[: end + 4 + length]
            loop.call_later(self.delay, self._answer, marks, path)

    def _answer(self, marks: set[bytes] | tuple[()], path: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ANSWER)
            if marks or self.stamps is not None:
                now = time.time()
                ANSWERED.extend((mark, now) for mark in marks)
                if self.stamps is not None:
                    self.stamps.lines.append(f"{now:.4f} {path.decode()}\n")


async def _serve(
    port: int,
    delay: float,
    tls: ssl.SSLContext | None,
    record: str | None,
    stamps: str | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    recorder = _Stamps(open(stamps, "a")) if stamps else None  # noqa: SIM115, ASYNC230 - at start
    if recorder is not None:
        recorder.flush()
    server = await loop.create_server(
        lambda: _Sink(delay, record is not None, recorder),
        "127.0.0.1",
        port,
        backlog=1024,
        ssl=tls,
    )
    print(f"latency sink listening on {'https' if tls else 'http'}://127.0.0.1:{port}", flush=True)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    async with server:
        await stopped.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--cert", help="PEM certificate: serve HTTPS")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--record", help="write `seq answer-time` lines here on SIGTERM")
    parser.add_argument("--stamps", help="append '<unix time> <path>' per answer to this file")
    args = parser.parse_args()
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    uvloop.run(_serve(args.port, args.latency_ms / 1000, tls, args.record, args.stamps))
    if args.record is not None:
        lines = (f"{int(mark)} {at:.6f}\n" for mark, at in ANSWERED)
        Path(args.record).write_text("".join(lines))


if __name__ == "__main__":
    main()
