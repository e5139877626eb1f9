"""The sandbox in process (aiohttp's test client): spec mode, request log, reseeded faults."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.cdp import get_dialect
from connector.cdp.sandbox.app import build_app
from connector.cdp.sandbox.faults import Faults
from connector.cdp.sandbox.server import Sandbox
from connector.cdp.sandbox.spec import SpecValidator

SPEC = Path(__file__).parents[1] / "fixtures" / "cdp-stream-api.asyncapi.yaml"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"k:t").decode()}
VIEW: dict[str, Any] = {
    "channel": "WEB",
    "type": "VIEW",
    "browser_id": "b-1",
    "session_id": "s-1",
    "pos": "shop.example.com",
    "currency": "EUR",
}

Start = Callable[..., Coroutine[Any, Any, tuple[Sandbox, TestClient[Any, Any]]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    clients: list[TestClient[Any, Any]] = []

    async def _start(**options: Any) -> tuple[Sandbox, TestClient[Any, Any]]:
        options.setdefault("dialect", get_dialect("asyncapi"))
        sandbox = Sandbox("k", "t", **options)
        client = TestClient(TestServer(build_app(sandbox)))
        await client.start_server()
        clients.append(client)
        return sandbox, client

    yield _start
    for client in clients:
        await client.close()


async def post(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[int, Any]:
    async with client.post("/v1.2/event/create.json", json=body, headers=AUTH) as response:
        return response.status, await response.json()


# -- spec mode -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**VIEW, "channel": "FAX"}, "channel"),
        ({**VIEW, "type": "IDENTITY", "email": "nope"}, "email"),
        ({**VIEW, "type": "SEARCH"}, "search_term"),
        ({k: v for k, v in VIEW.items() if k != "currency"}, "currency"),
        ({**VIEW, "type": "W" * 51}, "type"),
        (
            {
                **VIEW,
                "type": "ORDER_CHECKOUT",
                "reference_id": "O",
                "total_price": 1,
                "items": [{"sku": "A", "quantity": 0, "price": 1}],
            },
            "items.0.quantity",
        ),
    ],
)
async def test_spec_mode_refuses_what_the_spec_refuses_naming_the_field(
    start: Start, payload: dict[str, Any], field: str
) -> None:
    sandbox, client = await start(spec=SpecValidator(SPEC))
    status, body = await post(client, payload)
    assert (status, body["field"]) == (400, field)
    assert sandbox.recorded == 0


async def test_spec_mode_judges_by_the_spec_not_by_our_models(start: Start) -> None:
    # Our models refuse a lowercase currency and unknown fields; the spec allows both.
    loose = {**VIEW, "currency": "eur", "typo_field": 1}
    _, models = await start()
    assert (await post(models, loose))[0] == 400
    sandbox, spec = await start(spec=SpecValidator(SPEC))
    assert (await post(spec, loose))[0] == 201
    assert (await post(spec, {**VIEW, "type": "ADD", "product": {"sku": "A"}}))[0] == 201
    assert sandbox.recorded == 2


# -- the request log -----------------------------------------------------------------------


async def test_two_open_requests_of_one_guest_are_reported_as_an_overlap(start: Start) -> None:
    _, client = await start(faults=Faults(latency_ms=100))
    await asyncio.gather(
        post(client, VIEW), post(client, VIEW), post(client, {**VIEW, "browser_id": "b-2"})
    )
    async with client.get("/_sandbox/stats") as response:
        stats = await response.json()
    assert (stats["guest_overlaps"], stats["overlapping_guests"]) == (1, ["b-1"])
    async with client.get("/_sandbox/requests", params={"browser_id": "b-1"}) as response:
        log = (await response.json())["requests"]
    assert [(r["browser_id"], r["type"], r["status"]) for r in log] == [("b-1", "VIEW", "201")] * 2
    assert log[1]["start"] < log[0]["end"]
    assert all(r["ref"] for r in log)


async def test_one_request_after_another_is_no_overlap_and_is_logged_in_order(
    start: Start,
) -> None:
    sandbox, client = await start(faults=Faults(latency_ms=20))
    await post(client, VIEW)
    sandbox.injector.faults = Faults(error_rate=1.0)
    await post(client, VIEW)  # a faulted request is logged under its guest too
    await post(client, {**VIEW, "browser_id": "b-2"})
    async with client.get("/_sandbox/requests") as response:
        log = (await response.json())["requests"]
    assert [(r["seq"], r["browser_id"], r["status"]) for r in log] == [
        (1, "b-1", "201"),
        (2, "b-1", "503"),
        (3, "b-2", "503"),
    ]
    assert log[0]["end"] <= log[1]["start"]
    assert sandbox.requests.stats() == {"guest_overlaps": 0, "overlapping_guests": []}
    async with client.post("/_sandbox/reset") as response:
        assert response.status == 200
    assert sandbox.requests.entries() == []


# -- reset reseeds -------------------------------------------------------------------------


async def _statuses(client: TestClient[Any, Any], n: int) -> list[int]:
    return [(await post(client, VIEW))[0] for _ in range(n)]


async def test_reset_reseeds_random_faults_so_a_sequence_does_not_depend_on_history(
    start: Start,
) -> None:
    _, client = await start(faults=Faults(error_rate=0.5), seed=7)
    first = await _statuses(client, 30)
    await _statuses(client, 7)  # what an earlier test would have used up
    await client.post("/_sandbox/reset")
    assert await _statuses(client, 30) == first
    assert set(first) == {201, 503}
    async with client.post("/_sandbox/reset", json={"seed": 8}) as response:
        assert response.status == 200
    other = await _statuses(client, 30)
    await client.post("/_sandbox/reset", json={"seed": 8})
    assert await _statuses(client, 30) == other != first


async def test_reset_refuses_a_seed_that_is_no_integer(start: Start) -> None:
    _, client = await start()
    async with client.post("/_sandbox/reset", json={"seed": "x"}) as response:
        assert response.status == 400


def test_spec_errors_name_each_missing_field_base_fields_first() -> None:
    errors = SpecValidator(SPEC).errors({"channel": "WEB", "type": "IDENTITY", "browser_id": "b"})
    assert [e["field"] for e in errors] == ["session_id", "pos", "currency", "email"]
    assert errors[0]["message"] == "'session_id' is a required property"
