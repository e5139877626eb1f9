"""The builtin HTTP/1.1 client against scripted loopback servers (real sockets, no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from connector.cdp.http1 import Http1Error, Http1Pool

Handler = Callable[[bytes, int], list[bytes]]  # (request bytes, request number) → writes


class Scripted:
    """A TCP server answering each request with the handler's chunks; counts connections."""

    def __init__(self, handler: Handler, *, close_after: bool = False) -> None:
        self.handler = handler
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                for chunk in self.handler(request, len(self.requests)):
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.001)  # split the answer over several reads
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1.2/event/create.json"


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    async def start(handler: Handler, **kw: bool) -> Scripted:
        s = Scripted(handler, **kw)
        s.server = await asyncio.start_server(s.serve, "127.0.0.1", 0)
        servers.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in servers:
        assert s.server is not None
        s.server.close()
        for writer in s.writers:
            writer.close()
        await s.server.wait_closed()
    await asyncio.sleep(0.01)  # let the closed transports finish


def pool(url: str, **kw: float) -> Http1Pool:
    return Http1Pool(url, {"Authorization": "Basic eDp5", "Content-Type": "application/json"},
                     **kw)  # fmt: skip


async def test_content_length_answer_and_keep_alive_reuse(scripted) -> None:  # type: ignore[no-untyped-def]
    answer = b'HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{"ref":"r-1"} \n'
    server = await scripted(lambda req, n: [answer[:20], answer[20:]])
    client = pool(server.url)
    for _ in range(3):
        status, _, body = await client.post(b'{"a":1}')
        assert (status, body) == (201, b'{"ref":"r-1"} \n')
    await client.close()
    assert server.connections == 1
    request = server.requests[0]
    assert request.startswith(b"POST /v1.2/event/create.json HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Basic eDp5\r\n" in request
    assert request.endswith(b"Content-Length: 7\r\n\r\n" + b'{"a":1}')


async def test_chunked_answer_with_extension_and_trailer(scripted) -> None:  # type: ignore[no-untyped-def]
    answer = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
              b"5;ext=1\r\nhello\r\n", b"6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"]  # fmt: skip
    server = await scripted(lambda req, n: answer)
    client = pool(server.url)
    assert (await client.post(b"{}"))[::2] == (200, b"hello world")
    assert (await client.post(b"{}"))[::2] == (200, b"hello world")
    await client.close()
    assert server.connections == 1


async def test_answer_framed_by_close_and_interim_100(scripted) -> None:  # type: ignore[no-untyped-def]
    answer = [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\n\r\n",
              b"try later"]  # fmt: skip
    server = await scripted(lambda req, n: answer, close_after=True)
    client = pool(server.url)
    status, headers, body = await client.post(b"{}")
    assert (status, headers["retry-after"], body) == (503, "7", b"try later")
    await client.post(b"{}")
    await client.close()
    assert server.connections == 2  # no Content-Length: that socket could not be reused


async def test_connection_close_header_opens_a_new_socket(scripted) -> None:  # type: ignore[no-untyped-def]
    answer = b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = await scripted(lambda req, n: [answer], close_after=True)
    client = pool(server.url)
    for _ in range(2):
        assert (await client.post(b"{}"))[0] == 201
    await client.close()
    assert server.connections == 2


async def test_stale_kept_alive_socket_is_replaced_once(scripted) -> None:  # type: ignore[no-untyped-def]
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    # Keep-alive promised but the server closes after each answer, as an idle timeout does.
    server = await scripted(lambda req, n: [ok], close_after=True)
    client = pool(server.url)
    await client.post(b"{}")
    # Until the server's close reaches the client while the socket is idle in the pool.
    async with asyncio.timeout(2):
        while not all(conn.closed for conn in client._idle):
            await asyncio.sleep(0.001)
    assert (await client.post(b"{}"))[::2] == (201, b"ok")
    await client.close()
    assert len(server.requests) == 2


async def test_garbage_answer_is_an_os_error(scripted) -> None:  # type: ignore[no-untyped-def]
    server = await scripted(lambda req, n: [b"SSH-2.0-OpenSSH\r\n\r\n"])
    client = pool(server.url)
    with pytest.raises(Http1Error, match="status line"):
        await client.post(b"{}")
    await client.close()


async def test_silent_server_times_out(scripted) -> None:  # type: ignore[no-untyped-def]
    server = await scripted(lambda req, n: [])
    client = pool(server.url, timeout=0.2)
    with pytest.raises(TimeoutError):
        await client.post(b"{}")
    await client.close()


async def test_connection_refused_is_an_os_error() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    client = pool(f"http://127.0.0.1:{port}/x")
    with pytest.raises(OSError):
        await client.post(b"{}")
    await client.close()


async def test_pool_never_opens_more_than_its_limit(scripted) -> None:  # type: ignore[no-untyped-def]
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    server = await scripted(lambda req, n: [ok])
    client = pool(server.url, limit=3)
    answers = await asyncio.gather(*(client.post(b"{}") for _ in range(30)))
    await client.close()
    assert [a[0] for a in answers] == [201] * 30
    assert server.connections == 3
