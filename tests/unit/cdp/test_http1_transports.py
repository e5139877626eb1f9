"""post-events, get-query and browser/create.json through the builtin HTTP/1.1 client:
the same framing, keep-alive, stale-connection, timeout and TLS cases as post-basic
(test_http1.py, test_http1_tls.py), against scripted loopback servers (real sockets)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from connector.cdp.client import Answer, CdpClient, Outcome
from connector.cdp.transport import TransportName

OK = b'HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{"ref":"r-1"} \n'
EVENT = b'{"type":"VIEW","page":"a & b = c?/%","ext":{"x":"\xc3\xa9"}}'
KINDS: list[tuple[TransportName, str]] = [
    ("post-events", "event"),
    ("get-query", "event"),
    ("post-events", "browser"),
]


class Server:
    """Reads whole requests (GET or Content-Length framed); answers with ``reply``."""

    def __init__(self, reply: Callable[[bytes, int], list[bytes]], close_after: bool) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                for chunk in self.reply(self.requests[-1], len(self.requests)):
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.001)  # split the answer over several reads
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()


Start = Callable[..., Awaitable[Server]]


@pytest.fixture
async def server() -> AsyncIterator[Start]:
    started: list[tuple[Server, asyncio.Server]] = []

    async def start(
        reply: Callable[[bytes, int], list[bytes]],
        *,
        close_after: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> Server:
        s = Server(reply, close_after)
        srv = await asyncio.start_server(s.serve, "127.0.0.1", 0, ssl=tls)
        s.port = srv.sockets[0].getsockname()[1]
        started.append((s, srv))
        return s

    yield start
    for s, srv in started:
        srv.close()
        for writer in s.writers:
            writer.close()
        await srv.wait_closed()
    await asyncio.sleep(0.01)


async def _call(client: CdpClient, kind: str) -> Answer:
    return await (client.create_browser_id() if kind == "browser" else client.send(EVENT))


def _client(port: int, transport: TransportName, **kw: float) -> CdpClient:
    return CdpClient(f"http://127.0.0.1:{port}", "key & co", "", transport=transport, **kw)


def _check_request(request: bytes, transport: TransportName, kind: str) -> None:
    """The request is what the transport promises: path, no token, the key, the event."""
    line, _, rest = request.partition(b"\r\n")
    method, target, version = line.decode().split(" ")
    assert version == "HTTP/1.1"
    assert b"authorization" not in request.lower()
    query = parse_qs(urlsplit(target).query)
    if kind == "browser":
        assert (method, urlsplit(target).path) == ("GET", "/v1.2/browser/create.json")
        assert query == {"client_key": ["key & co"], "message": ["{}"]}
    elif transport == "get-query":
        assert (method, urlsplit(target).path) == ("GET", "/v1.2/event/create.json")
        assert query["client_key"] == ["key & co"]
        assert query["message"][0].encode() == EVENT
    else:
        assert (method, target) == ("POST", "/v1.2/events")
        body = rest.partition(b"\r\n\r\n")[2]
        assert json.loads(body) == {"client_key": "key & co", **json.loads(EVENT)}
        assert f"Content-Length: {len(body)}\r\n".encode() in request


@pytest.mark.parametrize(("transport", "kind"), KINDS)
async def test_answer_split_over_reads_and_keep_alive_reuse(
    server: Start, transport: TransportName, kind: str
) -> None:
    s = await server(lambda req, n: [OK[:20], OK[20:]])
    async with _client(s.port, transport) as client:
        answers = [await _call(client, kind) for _ in range(3)]
    assert {(a.outcome, a.ref) for a in answers} == {(Outcome.DELIVERED, "r-1")}
    assert s.connections == 1
    for request in s.requests:
        _check_request(request, transport, kind)


@pytest.mark.parametrize(("transport", "kind"), KINDS)
async def test_chunked_and_close_framed_answers(
    server: Start, transport: TransportName, kind: str
) -> None:
    chunked = [b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n",
               b'4;x=1\r\n{"re\r\n', b'9\r\nf":"r-2"}\r\n0\r\n\r\n']  # fmt: skip
    closed = [b'HTTP/1.1 201 Created\r\n\r\n{"ref":"r-3"}']
    s = await server(lambda req, n: chunked if n == 1 else closed, close_after=True)
    async with _client(s.port, transport) as client:
        first, second = await _call(client, kind), await _call(client, kind)
    assert (first.ref, second.ref) == ("r-2", "r-3")


@pytest.mark.parametrize(("transport", "kind"), KINDS)
async def test_stale_kept_alive_socket_is_replaced_once(
    server: Start, transport: TransportName, kind: str
) -> None:
    s = await server(lambda req, n: [OK], close_after=True)  # an idle timeout after each
    async with _client(s.port, transport) as client:
        await _call(client, kind)
        await asyncio.sleep(0.05)  # the close reaches the client while the socket is idle
        answer = await _call(client, kind)
    assert answer.outcome is Outcome.DELIVERED
    assert (len(s.requests), s.connections) == (2, 2)


@pytest.mark.parametrize(("transport", "kind"), KINDS)
async def test_a_silent_server_is_a_retryable_timeout(
    server: Start, transport: TransportName, kind: str
) -> None:
    s = await server(lambda req, n: [])
    async with _client(s.port, transport, timeout=0.2) as client:
        started = asyncio.get_running_loop().time()
        answer = await _call(client, kind)
        elapsed = asyncio.get_running_loop().time() - started
    assert (answer.outcome, answer.status) == (Outcome.RETRYABLE, None)
    assert "timeout" in answer.reason
    assert 0.19 <= elapsed < 1.0


@pytest.mark.parametrize(("transport", "kind"), KINDS)
async def test_garbage_answer_is_retryable_and_the_next_request_recovers(
    server: Start, transport: TransportName, kind: str
) -> None:
    s = await server(lambda req, n: [b"SSH-2.0-OpenSSH\r\n\r\n"] if n == 1 else [OK])
    async with _client(s.port, transport) as client:
        bad, good = await _call(client, kind), await _call(client, kind)
    assert (bad.outcome, bad.status) == (Outcome.RETRYABLE, None)
    assert "status line" in bad.reason
    assert good.outcome is Outcome.DELIVERED


async def test_browser_create_without_ref_is_retryable(server: Start) -> None:
    empty = [b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"]
    s = await server(lambda req, n: empty)
    async with _client(s.port, "get-query") as client:
        answer = await client.create_browser_id()
    assert answer.outcome is Outcome.RETRYABLE
    assert "without ref" in answer.reason


async def test_one_pool_serves_events_and_browser_ids_within_its_limit(server: Start) -> None:
    s = await server(lambda req, n: [OK])
    async with _client(s.port, "post-events", max_connections=3) as client:
        answers = await asyncio.gather(
            *(client.send(EVENT) for _ in range(20)),
            *(client.create_browser_id() for _ in range(20)),
        )
    assert {a.outcome for a in answers} == {Outcome.DELIVERED}
    assert s.connections == 3


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize(("transport", "kind"), KINDS)
async def test_over_tls_trusted_delivers_and_untrusted_is_refused(
    server: Start,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    transport: TransportName,
    kind: str,
) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    s = await server(lambda req, n: [OK], tls=tls)
    url = f"https://localhost:{s.port}"
    async with CdpClient(url, "key & co", "", transport=transport) as untrusting:
        refused = await _call(untrusting, kind)
    assert (refused.outcome, refused.status) == (Outcome.RETRYABLE, None)
    assert s.requests == []
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # OpenSSL's trust store override
    async with CdpClient(url, "key & co", "", transport=transport) as client:
        answers = [await _call(client, kind) for _ in range(2)]
    assert {a.outcome for a in answers} == {Outcome.DELIVERED}
    assert len(s.requests) == 2
    _check_request(s.requests[0], transport, kind)


async def test_waiting_for_a_connection_counts_against_the_timeout(server: Start) -> None:
    s = await server(lambda req, n: [])
    async with _client(s.port, "post-events", timeout=0.2, max_connections=1) as client:
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(client.send(EVENT) for _ in range(3)))
        elapsed = asyncio.get_running_loop().time() - started
    assert {(a.outcome, a.status) for a in answers} == {(Outcome.RETRYABLE, None)}
    assert elapsed < 1.0  # all three, though only one could ever hold the socket
    assert s.connections == 1
