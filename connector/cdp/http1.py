"""A small keep-alive HTTP/1.1 client on asyncio protocols: the connector's default HTTP path.

Why not aiohttp here: posting one small event costs aiohttp ~100-150 µs of CPU in
Python (request/response objects, header multidicts, payload writers, timers);
this client does the same exchange in ~15-20 µs (docs/benchmarks.md), which is
most of the connector's CPU budget per event. It does exactly what the CDP
exchange needs and nothing else: one origin, POST with a fixed header block or a
bare GET; answers read by llhttp (``connector.cdp.http1_parser``); TLS through the
standard ``ssl`` module; a forward proxy (``connector.cdp.proxy``: a CONNECT tunnel
for https, absolute-form requests for http); no redirects, no cookies. Per request it
allocates one future and does no timer work (one sweep per pool enforces the
timeout), so the loop's cost per event stays small.

Keep-alive against middleboxes: proxies and load balancers close idle connections
without a word, so a connection idle for more than ``max_idle`` seconds is closed
instead of reused; and a request on a reused connection that the server closed before
any byte of the answer is sent once more on a new connection (``stale_retries``
counts them).

``Http1Pool.post`` / ``get`` return ``(status, headers, body)`` or raise ``OSError`` /
``TimeoutError`` (``ConnectionError``, ``Http1Error`` and ``ProxyError`` are
OSErrors), the same failures the caller already maps to a retryable answer.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

from multidict import CIMultiDict
from yarl import URL

from connector.cdp.http1_parser import MAX_HEAD, Http1Error, Parser, Response, ResponseParser
from connector.cdp.proxy import Proxy

__all__ = ["Http1Error", "Http1Pool"]

_NO_HEADERS: Mapping[str, str] = CIMultiDict()


class _Connection(asyncio.Protocol):
    """One socket, one request at a time; its parser reads the answer as bytes arrive.

    Before the first request it may open a CONNECT tunnel (``tunnel``): the proxy's
    answer head is read here, then TLS to the API starts over the same socket."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = _new_parser()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.received = False  # any byte of an answer seen since the last send
        self.reused = False  # handed out again after an earlier answer
        self.deadline = 0.0  # time.monotonic() by which the current request must end
        self.idle_since = 0.0  # time.monotonic() when it last went back to the idle list
        self._tunnel: asyncio.Future[bytes] | None = None
        self._head = bytearray()
        self._loop = asyncio.get_running_loop()

    @property
    def keep_alive(self) -> bool:
        return self.parser.keep_alive

    # -- protocol callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            try:
                answer = self.parser.feed(data)
            except Http1Error as exc:
                waiter.set_exception(exc)
                return
            if answer is not None:
                waiter.set_result(answer)
        elif self._tunnel is not None:
            self._read_tunnel_head(data)
        else:  # nobody asked: the socket is in no state to reuse
            self.parser.keep_alive = False

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            answer = self.parser.finish()
            if answer is not None:
                waiter.set_result(answer)
            else:
                waiter.set_exception(
                    ConnectionError(f"server closed the connection: {exc or 'EOF'}")
                )
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(ConnectionError(f"closed during CONNECT: {exc or 'EOF'}"))

    # -- requests -------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None  # noqa: S101 - connected before use
        self.waiter = waiter = self._loop.create_future()
        self.received = False
        self.parser.start()
        self.transport.write(data)
        return waiter

    async def tunnel(self, request: bytes) -> tuple[int, str]:
        """Send a CONNECT ``request``; the proxy's status and reason phrase."""
        assert self.transport is not None  # noqa: S101 - connected before use
        self._tunnel = self._loop.create_future()
        self.transport.write(request)
        head = await self._tunnel
        line = head.split(b"\r\n", 1)[0]
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Http1Error(f"not an HTTP/1.x status line from the proxy: {line[:80]!r}")
        return int(parts[1]), (parts[2] if len(parts) > 2 else b"").decode("latin-1")

    def _read_tunnel_head(self, data: bytes) -> None:
        assert self._tunnel is not None  # noqa: S101 - only called while tunnelling
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end >= 0 and not self._tunnel.done():
            # Only the head: a 2xx has nothing after it, anything else closes the socket.
            self._tunnel.set_result(bytes(self._head[:end]))
        elif len(self._head) > MAX_HEAD and not self._tunnel.done():
            self._tunnel.set_exception(Http1Error("proxy answer headers too large"))

    def time_out(self) -> None:
        """The pool's sweep found the request past its deadline."""
        self.parser.keep_alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


#: Makes each connection's parser (a bench swaps it to compare parsers).
_new_parser: Callable[[], Parser] = ResponseParser


class Http1Pool:
    """Keep-alive connections to one origin; at most ``limit`` open at once.

    ``post`` sends to the path of ``url`` with ``headers`` (Authorization,
    Content-Type); ``get`` sends a bare GET (Host only) of any target on the same
    origin, so one pool serves a transport's events and its browser-id requests.
    ``timeout`` bounds a whole request, including waiting for a connection; it is
    enforced by one sweep every ``timeout / 8`` (not a timer per request), so a
    request may overrun it by up to that much. ``proxy``: every connection goes
    through it (module doc); ``max_idle``: seconds an idle connection may wait and
    still be reused.
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
        proxy: Proxy | None = None,
        max_idle: float = 20.0,
    ) -> None:
        url = URL(url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {url}")
        self._host = url.host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        self._proxy = proxy
        host_header = url.host if url.explicit_port is None else f"{url.host}:{url.port}"
        # Through a proxy, plain http names the origin in the request line (absolute
        # form); https talks to the origin itself inside the tunnel.
        origin = f"{url.scheme}://{host_header}" if proxy and self._ssl is None else ""
        extra = [f"Proxy-Authorization: {proxy.authorization}"] if origin and proxy else []
        tunnel = proxy is not None and self._ssl is not None
        self._connect = proxy.connect_request(self._host, self._port) if tunnel and proxy else b""
        head = [f"POST {origin}{url.raw_path_qs or '/'} HTTP/1.1", f"Host: {host_header}", *extra]
        head += [f"{name}: {value}" for name, value in headers.items()]
        self._prefix = ("\r\n".join(head) + "\r\nContent-Length: ").encode("latin-1")
        self._get_prefix = f"GET {origin}".encode("latin-1")
        get_head = [f" HTTP/1.1\r\nHost: {host_header}", *extra]
        self._get_suffix = ("\r\n".join(get_head) + "\r\n\r\n").encode("latin-1")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._limit = limit
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._busy: set[_Connection] = set()
        self._connecting = 0
        self._waiters: collections.deque[tuple[float, asyncio.Future[_Connection | None]]] = (
            collections.deque()
        )
        self._sweeper: asyncio.TimerHandle | None = None
        #: Requests sent again because a reused connection was found closed.
        self.stale_retries = 0

    # post and get hand back exchange's coroutine instead of awaiting it in one of their
    # own: one coroutine frame less per request.

    def post(self, body: bytes) -> Coroutine[Any, Any, tuple[int, Mapping[str, str], bytes]]:
        """POST ``body``; raises OSError or TimeoutError when no answer came.

        The headers come back only for answers of 300 and above (what the caller
        classifies with: Retry-After, Location); a 2xx answer's are not built."""
        return self.exchange(b"".join((self._prefix, str(len(body)).encode(), b"\r\n\r\n", body)))

    def get(self, target: bytes) -> Coroutine[Any, Any, tuple[int, Mapping[str, str], bytes]]:
        """GET ``target`` (path and query, already percent-encoded); as ``post``."""
        return self.exchange(self._get_prefix + target + self._get_suffix)

    async def exchange(self, data: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """Send one whole request (head and body) and read its answer; as ``post``."""
        now = time.monotonic()
        deadline = now + self._timeout
        if self._sweeper is None:
            self._start_sweeping()
        conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed or now - conn.idle_since > self._max_idle:
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
            self.stale_retries += 1
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
            self._discard(stale)  # closed, or idle too long to trust
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.closed or time.monotonic() - conn.idle_since > self._max_idle:
                    self._discard(conn)
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
        self._connecting += 1
        try:
            async with asyncio.timeout(min(self._connect_timeout, deadline - time.monotonic())):
                conn = await self._connect_new()
        finally:
            self._connecting -= 1
        self._open.add(conn)
        return conn

    async def _connect_new(self) -> _Connection:
        """A new connection to the origin: direct, or through the proxy (a CONNECT
        tunnel with TLS inside for https)."""
        loop = asyncio.get_running_loop()
        proxy = self._proxy
        if proxy is None:
            _, conn = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
            return conn
        try:
            transport, conn = await loop.create_connection(_Connection, proxy.host, proxy.port)
        except OSError as exc:
            raise proxy.unreachable(exc) from exc
        if self._ssl is None:
            return conn
        try:
            try:
                status, reason = await conn.tunnel(self._connect)
            except ConnectionError as exc:
                raise proxy.unreachable(exc) from exc
            if not 200 <= status < 300:
                raise proxy.refused(status, reason, f"{self._host}:{self._port}")
            tls = await loop.start_tls(transport, conn, self._ssl, server_hostname=self._host)
        except BaseException:
            transport.close()
            raise
        if tls is None:  # only when the loop is closing
            raise ConnectionError("TLS inside the proxy tunnel did not start")
        conn.transport = tls
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
            conn.idle_since = time.monotonic()
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
