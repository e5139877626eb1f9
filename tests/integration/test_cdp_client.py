"""CdpClient against the sandbox over real loopback HTTP: one test per answer class."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from connector.cdp import get_dialect
from connector.cdp.client import CdpClient, Outcome
from tests.fixtures_sandbox import SandboxProcess

pytestmark = pytest.mark.integration

DIALECT = get_dialect("asyncapi")
VIEW: dict[str, Any] = {
    "channel": "WEB",
    "type": "VIEW",
    "browser_id": "b-1",
    "session_id": "s-1",
    "pos": "shop.example.com",
    "currency": "EUR",
}
BODY = DIALECT.validate_and_dump(VIEW)


def client_for(sandbox: SandboxProcess, *, token: str | None = None, **kw: Any) -> CdpClient:
    return CdpClient(sandbox.url, sandbox.client_key, token or sandbox.api_token, **kw)


async def test_valid_event_is_delivered_with_the_sandbox_ref(cdp_sandbox: SandboxProcess) -> None:
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(BODY)
    assert (answer.outcome, answer.status) == (Outcome.DELIVERED, 201)
    assert answer.ref == cdp_sandbox.records()[0]["ref"]
    assert cdp_sandbox.events() == [VIEW]


async def test_many_concurrent_sends_share_a_small_pool(cdp_sandbox: SandboxProcess) -> None:
    async with client_for(cdp_sandbox, max_connections=4) as client:
        answers = await asyncio.gather(*(client.send(BODY) for _ in range(200)))
    assert {a.outcome for a in answers} == {Outcome.DELIVERED}
    assert len({a.ref for a in answers}) == 200
    assert cdp_sandbox.stats()["accepted"] == 200


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retryable(cdp_sandbox: SandboxProcess, status: int) -> None:
    cdp_sandbox.set_faults(error_rate=1.0, error_status=status)
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(BODY)
    assert (answer.outcome, answer.status) == (Outcome.RETRYABLE, status)


async def test_429_is_retryable_with_its_retry_after_seconds(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(rate_429=1.0, retry_after=3)
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(BODY)
    assert (answer.outcome, answer.status, answer.retry_after) == (Outcome.RETRYABLE, 429, 3.0)


async def test_429_retry_after_http_date_is_parsed(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(rate_429=1.0, retry_after=120, retry_after_http_date=True)
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(BODY)
    assert answer.outcome is Outcome.RETRYABLE
    assert answer.retry_after is not None
    assert 110 <= answer.retry_after <= 121  # HTTP-dates have one-second resolution


async def test_rate_ceiling_429_is_retryable(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(max_rps=1)
    async with client_for(cdp_sandbox) as client:
        answers = [await client.send(BODY) for _ in range(5)]
    limited = [a for a in answers if a.status == 429]
    assert limited
    assert all(a.outcome is Outcome.RETRYABLE and a.retry_after == 1.0 for a in limited)


async def test_dropped_connection_is_retryable_without_status(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(drop_rate=1.0)
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(BODY)
        assert (answer.outcome, answer.status) == (Outcome.RETRYABLE, None)
        cdp_sandbox.clear_faults()
        assert (await client.send(BODY)).outcome is Outcome.DELIVERED  # the client recovers


async def test_outage_is_retryable(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(outage_seconds=30)
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(BODY)
    assert (answer.outcome, answer.status) == (Outcome.RETRYABLE, 503)
    assert answer.retry_after is not None


async def test_timeout_is_retryable_without_status(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(latency_ms=2000)
    async with client_for(cdp_sandbox, timeout=0.3) as client:
        answer = await client.send(BODY)
    assert (answer.outcome, answer.status) == (Outcome.RETRYABLE, None)
    assert "timeout" in answer.reason


async def test_connection_refused_is_retryable_without_status() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with CdpClient(f"http://127.0.0.1:{port}", "k", "secret-token", timeout=2) as client:
        answer = await client.send(BODY)
    assert (answer.outcome, answer.status) == (Outcome.RETRYABLE, None)
    assert "secret-token" not in answer.reason


async def test_invalid_event_is_permanent_with_the_reason(cdp_sandbox: SandboxProcess) -> None:
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(b'{"channel":"WEB","type":"IDENTITY","browser_id":"b"}')
    assert (answer.outcome, answer.status) == (Outcome.PERMANENT, 400)
    assert "session_id" in answer.reason


async def test_garbage_body_is_permanent(cdp_sandbox: SandboxProcess) -> None:
    async with client_for(cdp_sandbox) as client:
        answer = await client.send(b"\x00not json")
    assert (answer.outcome, answer.status) == (Outcome.PERMANENT, 400)


async def test_wrong_token_is_fatal_and_not_leaked(cdp_sandbox: SandboxProcess) -> None:
    wrong = "wrong-token-value"
    async with client_for(cdp_sandbox, token=wrong) as client:
        answer = await client.send(BODY)
        assert "wrong-token-value" not in repr(client)
    assert (answer.outcome, answer.status) == (Outcome.FATAL, 401)
    assert "wrong-token-value" not in repr(answer)


async def test_auth_failure_mode_is_fatal_then_recovers(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(auth_fail=True)
    async with client_for(cdp_sandbox) as client:
        assert (await client.send(BODY)).outcome is Outcome.FATAL
        cdp_sandbox.set_faults(auth_fail=False)
        assert (await client.send(BODY)).outcome is Outcome.DELIVERED
