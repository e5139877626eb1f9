"""The three transports, browser/create.json and the pos probe against the real sandbox
over loopback HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.cdp import get_dialect
from connector.cdp.client import CdpClient, Outcome
from connector.cdp.probe import probe_points_of_sale
from connector.cdp.transport import MAX_GET_URL_BYTES, TRANSPORTS, TransportName

pytestmark = pytest.mark.integration

DIALECT = get_dialect("sitecore")
EVENT: dict[str, Any] = {
    "type": "VIEW",
    "channel": "WEB",
    "language": "EN",
    "currency": "EUR",
    "page": "home page",
    "pos": "shop.example.com",
    "browser_id": "a38b230c-11eb-4cf9-8d5d-274e9f344925",
    "ext": {"note": "a & b = c?/%"},
}


def client_for(sandbox: Any, transport: TransportName, *, token: str | None = None) -> CdpClient:
    return CdpClient(
        sandbox.url,
        sandbox.client_key,
        sandbox.api_token if token is None else token,
        transport=transport,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_transport_delivers_the_event_unchanged(
    cdp_sitecore_sandbox: Any, transport: TransportName
) -> None:
    body = DIALECT.validate_and_dump(EVENT)
    async with client_for(cdp_sitecore_sandbox, transport) as client:
        answer = await client.send(body)
    assert answer.outcome is Outcome.DELIVERED, answer
    assert answer.ref
    assert cdp_sitecore_sandbox.events() == [json.loads(body)]


@pytest.mark.parametrize("transport", ["post-events", "get-query"])
async def test_keyed_transports_send_no_token_and_a_wrong_key_is_fatal(
    cdp_sitecore_sandbox: Any, transport: TransportName
) -> None:
    body = DIALECT.validate_and_dump(EVENT)
    async with client_for(cdp_sitecore_sandbox, transport, token="") as client:
        assert (await client.send(body)).outcome is Outcome.DELIVERED
    wrong = CdpClient(cdp_sitecore_sandbox.url, "not-the-key", "", transport=transport)
    async with wrong:
        answer = await wrong.send(body)
    assert (answer.outcome, answer.status) == (Outcome.FATAL, 401)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_invalid_event_is_permanent_on_every_transport(
    cdp_sitecore_sandbox: Any, transport: TransportName
) -> None:
    body = json.dumps({**EVENT, "channel": "SERVER_SIDE"}).encode()
    async with client_for(cdp_sitecore_sandbox, transport) as client:
        answer = await client.send(body)
    assert (answer.outcome, answer.status) == (Outcome.PERMANENT, 400)
    assert "channel" in answer.reason


async def test_an_event_too_long_for_a_get_is_permanent_without_a_request(
    cdp_sitecore_sandbox: Any,
) -> None:
    long = DIALECT.validate_and_dump({**EVENT, "ext": {"blob": "x" * MAX_GET_URL_BYTES}})
    async with client_for(cdp_sitecore_sandbox, "get-query") as client:
        answer = await client.send(long)
        short = await client.send(DIALECT.validate_and_dump(EVENT))
    assert answer.outcome is Outcome.PERMANENT
    assert answer.status is None
    assert "too long for get-query" in answer.reason
    assert short.outcome is Outcome.DELIVERED
    assert cdp_sitecore_sandbox.stats()["requests"] == 1


async def test_browser_create_answers_a_new_ref_each_time(cdp_sitecore_sandbox: Any) -> None:
    async with client_for(cdp_sitecore_sandbox, "post-events") as client:
        first = await client.create_browser_id()
        second = await client.create_browser_id()
    assert first.outcome is Outcome.DELIVERED
    assert first.ref and second.ref and first.ref != second.ref
    assert cdp_sitecore_sandbox.stats()["browsers_created"] == 2


async def test_an_unknown_pos_is_answered_ok_and_dropped(cdp_sitecore_sandbox: Any) -> None:
    body = DIALECT.validate_and_dump({**EVENT, "pos": "elsewhere.example"})
    async with client_for(cdp_sitecore_sandbox, "post-events") as client:
        answer = await client.send(body)
    assert answer.outcome is Outcome.DELIVERED
    stats = cdp_sitecore_sandbox.stats()
    assert stats["dropped"] == 1
    assert stats["dropped_by_pos"] == {"elsewhere.example": 1}
    assert cdp_sitecore_sandbox.events() == []


async def test_probe_reports_unknown_pos_as_failure_against_the_sandbox(
    cdp_sitecore_sandbox: Any,
) -> None:
    async with client_for(cdp_sitecore_sandbox, "post-events") as client:
        results = await probe_points_of_sale(
            client,
            DIALECT,
            ["shop.example.com", "nowhere.example"],
            sandbox_url=cdp_sitecore_sandbox.url,
        )
        blind = await probe_points_of_sale(client, DIALECT, ["nowhere.example"])
    assert [(r.pos, r.ok) for r in results] == [
        ("shop.example.com", True),
        ("nowhere.example", False),
    ]
    assert "dropped" in results[1].detail
    # Without the sandbox's admin API, an accepted event is all it can see.
    assert blind[0].ok and "drops it silently" in blind[0].detail


async def test_probe_works_for_the_asyncapi_dialect_too(cdp_sandbox: Any) -> None:
    async with CdpClient(cdp_sandbox.url, cdp_sandbox.client_key, cdp_sandbox.api_token) as c:
        results = await probe_points_of_sale(
            c, get_dialect("asyncapi"), ["shop.example.com"], sandbox_url=cdp_sandbox.url
        )
    assert results[0].ok, results


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_what_sitecores_sdks_send_is_accepted_on_every_transport(
    cdp_sitecore_sandbox: Any, transport: TransportName
) -> None:
    from tests.unit.cdp.test_sitecore_sdk_events import SDK_EVENTS

    # At a point of sale the sandbox knows (it drops the others, as the service does).
    events = [{**event, "pos": EVENT["pos"]} for event in SDK_EVENTS.values()]
    bodies = [DIALECT.validate_and_dump(event) for event in events]
    async with client_for(cdp_sitecore_sandbox, transport) as client:
        answers = [await client.send(body) for body in bodies]
    assert {a.outcome for a in answers} == {Outcome.DELIVERED}, answers
    assert cdp_sitecore_sandbox.events() == [json.loads(b) for b in bodies]
