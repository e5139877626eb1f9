"""Probe the configured points of sale: one harmless VIEW event each, and what came of it.

For ``cdp-connector check``. The real service answers an event for an unknown point
of sale with success and drops it silently, so a 2xx proves only that the endpoint,
the credentials and the payload shape are right. Against the sandbox, whose admin API
counts drops per pos (``/_sandbox/stats``), the probe can tell a dropped event and
reports it as a failure; against a real tenant it says what it cannot see.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from connector.cdp.answer import Answer, Outcome
from connector.cdp.dialect import Dialect

__all__ = ["PosProbe", "probe_event", "probe_points_of_sale"]

PROBE_EVENT_TYPE = "VIEW"


class ProbeClient(Protocol):
    """What the probe needs of the CDP client (``CdpClient``)."""

    async def send(self, body: bytes) -> Answer:
        """Post one event body; the classified answer."""
        ...

    async def create_browser_id(self) -> Answer:
        """A new browser id for the probe's guest: DELIVERED with ``ref`` set, or why not."""
        ...


@dataclass(frozen=True)
class PosProbe:
    """The verdict for one point of sale."""

    pos: str
    ok: bool
    detail: str
    status: int | None = None


def probe_event(dialect: Dialect, pos: str, browser_id: str) -> bytes:
    """A minimal valid VIEW event for ``pos`` in ``dialect``, serialized."""
    payload: dict[str, Any] = {
        "type": PROBE_EVENT_TYPE,
        "channel": "WEB",
        "pos": pos,
        "browser_id": browser_id,
        "currency": "EUR",
        "language": "EN",
        "ext": {"cdpConnectorProbe": True},
    }
    if "session_id" in dialect.model_for(PROBE_EVENT_TYPE).model_fields:
        payload["session_id"] = str(uuid.uuid4())
    payload["page"] = (
        "https://cdp-connector.invalid/probe"
        if dialect.name == "asyncapi"
        else ("cdp-connector probe")
    )
    return dialect.validate_and_dump(payload)


async def probe_points_of_sale(
    client: ProbeClient,
    dialect: Dialect,
    points_of_sale: Sequence[str],
    *,
    sandbox_url: str | None = None,
) -> list[PosProbe]:
    """Post one probe event per pos; ``sandbox_url`` (a sandbox base URL) lets it see drops."""
    made = await client.create_browser_id()
    browser_id = made.ref if made.outcome is Outcome.DELIVERED and made.ref else None
    browser_id = browser_id or str(uuid.uuid4())
    before = await _dropped(sandbox_url)
    results: list[PosProbe] = []
    for pos in points_of_sale:
        answer = await client.send(probe_event(dialect, pos, browser_id))
        if answer.outcome is not Outcome.DELIVERED:
            results.append(PosProbe(pos, False, f"refused: {answer.reason}", answer.status))
            continue
        after = await _dropped(sandbox_url)
        if after is None:
            detail = (
                "accepted (HTTP 2xx); the service also accepts an unknown pos and drops it "
                "silently, so check the pos exists in the tenant's settings"
            )
            results.append(PosProbe(pos, True, detail, answer.status))
        elif after.get(pos, 0) > (before or {}).get(pos, 0):
            results.append(PosProbe(pos, False, "accepted but dropped: unknown pos", 201))
        else:
            results.append(PosProbe(pos, True, "accepted and kept", answer.status))
        before = after
    return results


async def _dropped(sandbox_url: str | None) -> dict[str, int] | None:
    """The sandbox's drop counts per pos; None when it is not a sandbox (or unreachable)."""
    if sandbox_url is None:
        return None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(sandbox_url.rstrip("/") + "/_sandbox/stats") as response,
        ):
            if response.status != 200:
                return None
            stats = json.loads(await response.read())
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
        return None
    dropped = stats.get("dropped_by_pos") if isinstance(stats, dict) else None
    return dict(dropped) if isinstance(dropped, dict) else None
