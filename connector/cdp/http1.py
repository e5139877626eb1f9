"""A small keep-alive HTTP/1.1 POST client on asyncio protocols: the connector's hot path.

Why not aiohttp here: posting one small event costs aiohttp ~100-150 µs of CPU in
Python (request/response objects, header multidicts, payload writers, timers);
this client does the same exchange in ~15-20 µs (docs/benchmarks.md), which is
most of the connector's CPU budget per event. It does exactly what the CDP
exchange needs and nothing else: one origin, POST with a fixed header block,
responses framed by Content-Length, chunked encoding or connection close; TLS
through the standard ``ssl`` module; no redirects, no cookies, no proxies.

``Http1Pool.post`` returns ``(status, headers, body)`` or raises ``OSError`` /
``TimeoutError`` (``ConnectionError`` and ``Http1Error`` are OSErrors), the same
failures the caller already maps to a retryable answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import cast

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
        self.received = False  # any byte of an answer seen on this connection

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
        self.waiter = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.transport.write(data)
        return self.waiter

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
        """A whole answer from the buffer, or None while more bytes are needed."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise Http1Error("answer headers too large")
            return None
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise Http1Error(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise Http1Error(f"malformed header line: {line[:80]!r}")
            value = value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == "content-length":
                if not value.isdigit():
                    raise Http1Error(f"bad Content-Length: {value[:40]!r}")
                length = int(value)
            elif lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "connection" and "close" in value.lower():
                self.keep_alive = False
        if parts[0] == "HTTP/1.0":
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
    """Keep-alive connections to one URL; at most ``limit`` open at once.

    ``headers`` are sent with every request (Authorization, Content-Type).
    ``timeout`` bounds a whole request, including waiting for a connection.
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
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def post(self, body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """POST ``body``; raises OSError or TimeoutError when no answer came.

        The headers come back only for answers of 300 and above (what the caller
        classifies with: Retry-After, Location); a 2xx answer's are not built."""
        data = b"".join((self._prefix, str(len(body)).encode(), b"\r\n\r\n", body))
        async with asyncio.timeout(self._timeout), self._slots:
            conn, reused = await self._acquire()
            try:
                status, headers, answer = await conn.send(data)
            except ConnectionError:
                self._discard(conn)
                if not (reused and not conn.received):
                    raise
                # A kept-alive socket the server had already closed: nothing was read,
                # so send once more on a fresh one (at-least-once allows a repeat).
                conn, _ = await self._acquire(fresh=True)
                try:
                    status, headers, answer = await conn.send(data)
                except BaseException:
                    self._discard(conn)
                    raise
            except BaseException:  # timeout or cancellation: the socket's state is unknown
                self._discard(conn)
                raise
        if conn.keep_alive and not conn.closed:
            self._idle.append(conn)
        else:
            self._discard(conn)
        return status, (CIMultiDict(headers) if status >= 300 else _NO_HEADERS), answer

    async def _acquire(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed:
                conn.received = False
                return conn, True
            self._open.discard(conn)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        self._open.add(conn)
        return conn, False

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    async def close(self) -> None:
        """Close every connection."""
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
