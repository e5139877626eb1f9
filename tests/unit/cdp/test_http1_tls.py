"""The builtin HTTP/1.1 client over TLS, as the real CDP endpoints are https.

A self-signed certificate (openssl) for `localhost` on a loopback TLS server: the
client verifies it against the configured trust store, refuses it otherwise, and
refuses a name the certificate does not carry.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from connector.cdp.client import CdpClient, Outcome
from connector.cdp.http1 import Http1Pool

ANSWER = b'HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{"status":"OK"}'


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


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[int, list[bytes]]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                requests.append(head + await reader.readexactly(length))
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], requests
    server.close()
    await server.wait_closed()


def _pool(url: str, context: ssl.SSLContext | None = None) -> Http1Pool:
    headers = {"Authorization": "Basic eDp5", "Content-Type": "application/json"}
    return Http1Pool(URL(url), headers, ssl_context=context)


async def test_posts_over_tls_to_a_trusted_certificate(
    tls_server: tuple[int, list[bytes]], certificate: tuple[Path, Path]
) -> None:
    port, requests = tls_server
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    pool = _pool(f"https://localhost:{port}/v1.2/event/create.json", trusted)
    try:
        for _ in range(3):
            status, _headers, body = await pool.post(b'{"type":"VIEW"}')
            assert (status, body) == (201, b'{"status":"OK"}')
    finally:
        await pool.close()
    assert len(requests) == 3
    assert requests[0].startswith(b"POST /v1.2/event/create.json HTTP/1.1\r\n")


async def test_untrusted_certificate_is_refused(tls_server: tuple[int, list[bytes]]) -> None:
    port, requests = tls_server
    pool = _pool(f"https://localhost:{port}/v1.2/event/create.json")  # system trust store
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await pool.post(b"{}")
    finally:
        await pool.close()
    assert requests == []


async def test_a_name_the_certificate_does_not_carry_is_refused(
    tls_server: tuple[int, list[bytes]], certificate: tuple[Path, Path]
) -> None:
    port, _ = tls_server
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    pool = _pool(f"https://127.0.0.1:{port}/v1.2/event/create.json", trusted)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await pool.post(b"{}")
    finally:
        await pool.close()


async def test_cdp_client_uses_the_system_trust_store_and_classifies_tls_failure(
    tls_server: tuple[int, list[bytes]],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, _ = tls_server
    url = f"https://localhost:{port}"
    async with CdpClient(url, "key", "token") as untrusting:
        answer = await untrusting.send(b"{}")
    assert answer.outcome is Outcome.RETRYABLE and answer.status is None

    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # OpenSSL's trust store override
    async with CdpClient(url, "key", "token") as client:
        answer = await client.send(b'{"type":"VIEW"}')
    assert answer.outcome is Outcome.DELIVERED
