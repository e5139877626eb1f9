"""A small keep-alive HTTP/1.1 client on asyncio protocols: the connector's only HTTP path.

Why not aiohttp here: posting one small event costs aiohttp ~100-150 µs of CPU in
Python (request/response objects, header multidicts, payload writers, timers);
this client does the same exchange in ~15-20 µs (docs/benchmarks.md), which is
most of the connector's CPU budget per event. It does exactly what the CDP
exchange needs and nothing else: one origin, POST with a fixed header block or a
bare GET, responses framed by Content-Length, chunked encoding or connection
close; TLS through the standard ``ssl`` module; no redirects, no cookies, no
proxies. Per request it allocates one future and does no timer work (one sweep
per pool enforces the timeout), so the loop's cost per event stays small.

``Http1Pool.post`` / ``get`` return ``(status, headers, body)`` or raise ``OSError`` /
``TimeoutError`` (``ConnectionError`` and ``Http1Error`` are OSErrors), the same
failures the caller already maps to a retryable answer.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Coroutine, Mapping
from typing import Any, cast

from multidict import CIMultiDict
from yarl import URL

from connector.errors import InternalError

__all__ = ["Http1Error", "Http1Pool"]

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
_NO_HEADERS: Mapping[str, str] = CIMultiDict()


class Http1Error(InternalError, ConnectionError):
    """The server's answer is not HTTP/1.1 we can read; the connection is dropped."""


class _Connection(asyncio.Protocol):
    """One socket, one request at a time; parses the answer as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, list[tuple[str, str]], bytes]] | None = None
        self.closed = False
        self.keep_alive = True
        self.received = False  # any byte of an answer seen since the last send
        self.reused = False  # handed out again after an earlier answer
        self.deadline = 0.0  # time.monotonic() by which the current request must end
        self._loop = asyncio.get_running_loop()

    # -- protocol callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self._try_parse(eof=False)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self._try_parse(eof=True)
            if not waiter.done():
                waiter.set_exception(
                    ConnectionError(f"server closed the connection: {exc or 'EOF'}")
                )

    # -- requests -------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[tuple[int, list[tuple[str, str]], bytes]]:
        assert self.transport is not None  # noqa: S101 - connected before use
        self.waiter = waiter = self._loop.create_future()
        self.received = False
        self.buffer.clear()
        self.transport.write(data)
        return waiter

    def time_out(self) -> None:
        """The pool's sweep found the request past its deadline."""
        self.keep_alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _try_parse(self, *, eof: bool) -> None:
        try:
            answer = self._parse(eof)
        except Http1Error as exc:
            self.keep_alive = False
            assert self.waiter is not None  # noqa: S101 - only called while waiting
            self.waiter.set_exception(exc)
            return
        if answer is not None:
            assert self.waiter is not None  # noqa: S101 - only called while waiting
            self.waiter.set_result(answer)

    def _parse(self, eof: bool) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """A whole answer from the buffer, or None while more bytes are needed.

        Header lines are only decoded into the returned list for answers of 300 and
        above (what ``Http1Pool`` hands on); framing headers are read from every one."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise Http1Error("answer headers too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Http1Error(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        keep = status >= 300
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, sep, raw = line.partition(b":")
            if not sep:
                raise Http1Error(f"malformed header line: {line[:80]!r}")
            if keep:
                headers.append((name.decode("latin-1"), raw.strip().decode("latin-1")))
            size = len(name)  # only three names matter for framing; test the length first
            if size == 14 and name.lower() == b"content-length":
                value = raw.strip()
                if not value.isdigit():
                    raise Http1Error(f"bad Content-Length: {value[:40]!r}")
                length = int(value)
            elif size == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in raw.lower()
            elif size == 10 and name.lower() == b"connection" and b"close" in raw.lower():
                self.keep_alive = False
        if parts[0] == b"HTTP/1.0":
            self.keep_alive = False
        start = end + 4
        if 100 <= status < 200:  # an interim answer (no Expect sent, but legal): skip it
            del buf[:start]
            return self._parse(eof) if buf else None
        if status in (204, 304):
            body = b""
        elif chunked:
            decoded = _dechunk(buf, start)
            if decoded is None:
                return None
            body = decoded
        elif length is not None:
            if length > MAX_BODY:
                raise Http1Error(f"answer body too large ({length} bytes)")
            if len(buf) - start < length:
                return None
            body = bytes(buf[start : start + length])
        else:  # framed by the connection closing
            self.keep_alive = False
            if not eof:
                if len(buf) - start > MAX_BODY:
                    raise Http1Error("answer body too large")
                return None
            body = bytes(buf[start:])
        buf.clear()
        return status, headers, body


def _dechunk(buf: bytearray, pos: int) -> bytes | None:
    """The body of a complete chunked message starting at ``pos``, None if incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Http1Error(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            trailer_end = buf.find(b"\r\n", eol + 2)
            while trailer_end >= 0 and trailer_end != eol + 2:
                eol, trailer_end = trailer_end, buf.find(b"\r\n", trailer_end + 2)
            return None if trailer_end < 0 else bytes(out)
        if len(out) + size > MAX_BODY:
            raise Http1Error("answer body too large")
        data_end = eol + 2 + size
        if len(buf) < data_end + 2:
            return None
        out += buf[eol + 2 : data_end]
        pos = data_end + 2


class Http1Pool:
    """Keep-alive connections to one origin; at most ``limit`` open at once.

    ``post`` sends to the path of ``url`` with ``headers`` (Authorization,
    Content-Type); ``get`` sends a bare GET (Host only) of any target on the same
    origin, so one pool serves a transport's events and its browser-id requests.
    ``timeout`` bounds a whole request, including waiting for a connection; it is
    enforced by one sweep every ``timeout / 8`` (not a timer per request), so a
    request may overrun it by up to that much.
    """

    def __init__(
        self,
        url: str | URL,
        headers: Mapping[str, str],
        *,
        limit: int = 256,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = URL(url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {url}")
        self._host = url.host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        host_header = url.host if url.explicit_port is None else f"{url.host}:{url.port}"
        head = [f"POST {url.raw_path_qs or '/'} HTTP/1.1", f"Host: {host_header}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        self._prefix = ("\r\n".join(head) + "\r\nContent-Length: ").encode("latin-1")
        self._get_suffix = f" HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode("latin-1")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._limit = limit
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._busy: set[_Connection] = set()
        self._connecting = 0
        self._waiters: collections.deque[tuple[float, asyncio.Future[_Connection | None]]] = (
            collections.deque()
        )
        self._sweeper: asyncio.TimerHandle | None = None

    # post and get hand back exchange's coroutine instead of awaiting it in one of their
    # own: one coroutine frame less per request.

    def post(self, body: bytes) -> Coroutine[Any, Any, tuple[int, Mapping[str, str], bytes]]:
        """POST ``body``; raises OSError or TimeoutError when no answer came.

        The headers come back only for answers of 300 and above (what the caller
        classifies with: Retry-After, Location); a 2xx answer's are not built."""
        return self.exchange(b"".join((self._prefix, str(len(body)).encode(), b"\r\n\r\n", body)))

    def get(self, target: bytes) -> Coroutine[Any, Any, tuple[int, Mapping[str, str], bytes]]:
        """GET ``target`` (path and query, already percent-encoded); as ``post``."""
        return self.exchange(b"GET " + target + self._get_suffix)

    async def exchange(self, data: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """Send one whole request (head and body) and read its answer; as ``post``."""
        deadline = time.monotonic() + self._timeout
        if self._sweeper is None:
            self._start_sweeping()
        conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = await self._acquire(conn, deadline)
            reused = conn.reused
        else:
            reused = True
        conn.deadline = deadline
        self._busy.add(conn)
        try:
            status, headers, answer = await conn.send(data)
        except ConnectionError:
            self._release(conn, keep=False)
            if not (reused and not conn.received):
                raise
            # A kept-alive socket the server had already closed: nothing was read,
            # so send once more on a fresh one (at-least-once allows a repeat).
            conn = await self._acquire(None, deadline, fresh=True)
            conn.deadline = deadline
            self._busy.add(conn)
            try:
                status, headers, answer = await conn.send(data)
            except BaseException:
                self._release(conn, keep=False)
                raise
        except BaseException:  # timeout or cancellation: the socket's state is unknown
            self._release(conn, keep=False)
            raise
        self._release(conn, keep=conn.keep_alive and not conn.closed)
        return status, (CIMultiDict(headers) if status >= 300 else _NO_HEADERS), answer

    async def _acquire(
        self, stale: _Connection | None, deadline: float, *, fresh: bool = False
    ) -> _Connection:
        """A live connection: an idle one (unless ``fresh``), a new one while fewer than
        ``limit`` are open, else the next one released (or room for a new one)."""
        if stale is not None:
            self._open.discard(stale)
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.closed:
                    self._open.discard(conn)
                elif not fresh:
                    conn.reused = True
                    return conn
                else:  # make room for the fresh one
                    self._discard(conn)
            if len(self._open) + self._connecting < self._limit:
                break
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append((deadline, waiter))
            try:
                handed = await waiter  # the sweep fails it with TimeoutError at the deadline
            except asyncio.CancelledError:
                late = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if late is not None:
                    self._release(late, keep=True)  # handed over as we left
                raise
            if handed is not None:
                if not handed.closed and not fresh:
                    handed.reused = True
                    return handed
                self._discard(handed)
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            async with asyncio.timeout(min(self._connect_timeout, deadline - time.monotonic())):
                _, conn = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        finally:
            self._connecting -= 1
        self._open.add(conn)
        return conn

    def _release(self, conn: _Connection, *, keep: bool) -> None:
        """Back to the idle list (``keep``) or closed; the first waiter gets it, or the
        room it leaves."""
        self._busy.discard(conn)
        if not keep:
            self._discard(conn)
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn if keep else None)
                return
        if keep:
            self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    def _start_sweeping(self) -> None:
        interval = max(0.005, min(self._timeout / 8, 0.5))
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep, interval)

    def _sweep(self, interval: float) -> None:
        """Fail every request and connection wait past its deadline with TimeoutError."""
        self._sweeper = None
        now = time.monotonic()
        for conn in [c for c in self._busy if c.deadline <= now]:
            conn.time_out()
        if self._waiters:
            for deadline, waiter in self._waiters:
                if deadline <= now and not waiter.done():
                    waiter.set_exception(TimeoutError())
            self._waiters = collections.deque(w for w in self._waiters if not w[1].done())
        if self._busy or self._waiters:
            self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep, interval)

    async def close(self) -> None:
        """Close every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
