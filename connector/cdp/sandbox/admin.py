"""The sandbox's admin API under ``/_sandbox/`` (listed in ``server``).

What tests and the demo use to look at the sandbox and steer it: the events it
accepted, its counters, its request log, its faults, a reset. aiohttp calls the
handlers on the sandbox's event loop; there is no auth (a loopback test tool). A bad
query or body is answered 400 with ``{"error": ...}``; nothing raises.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from connector.cdp.sandbox.faults import Faults

if TYPE_CHECKING:
    from connector.cdp.sandbox.server import Sandbox

__all__ = ["Admin"]


class Admin:
    """The admin handlers of one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """The ``/_sandbox/`` routes, for ``app.build_app``."""
        return [
            web.get("/_sandbox/events", self.get_events),
            web.delete("/_sandbox/events", self.delete_events),
            web.get("/_sandbox/stats", self.get_stats),
            web.get("/_sandbox/requests", self.get_requests),
            web.get("/_sandbox/faults", self.get_faults),
            web.put("/_sandbox/faults", self.set_faults),
            web.post("/_sandbox/faults", self.set_faults),
            web.delete("/_sandbox/faults", self.clear_faults),
            web.post("/_sandbox/reset", self.reset),
        ]

    async def get_events(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/events``: accepted events, optionally of one ``type``, paged
        with ``offset``/``limit``."""
        sandbox = self._sandbox
        sandbox.flush()
        wanted = request.query.get("type")
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "100000"))
        except ValueError:
            return web.json_response({"error": "offset/limit must be integers"}, status=400)
        events = [e for e in sandbox.events if wanted is None or e["event"].get("type") == wanted]
        return web.json_response(
            {"total": sandbox.recorded, "events": events[offset : offset + limit]}
        )

    async def delete_events(self, request: web.Request) -> web.Response:
        """``DELETE /_sandbox/events``: forget the accepted events (counters stay)."""
        self._sandbox.events.clear()
        return web.json_response({"ok": True})

    async def get_stats(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/stats``: request, status, type, drop and overlap counters."""
        sandbox = self._sandbox
        return web.json_response(
            {
                "requests": sum(sandbox.by_status.values()),
                "accepted": sandbox.recorded,
                "by_status": dict(sandbox.by_status),
                "by_type": dict(sandbox.by_type),
                "max_concurrent": sandbox.max_concurrent,
                "dropped": sum(sandbox.dropped_by_pos.values()),
                "dropped_by_pos": dict(sandbox.dropped_by_pos),
                "browsers_created": sandbox.browsers_created,
                **sandbox.requests.stats(),
            }
        )

    async def get_faults(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/faults``: the faults in force, and the sandbox's clock."""
        return web.json_response({**self._sandbox.injector.faults.model_dump(), "now": time.time()})

    async def set_faults(self, request: web.Request) -> web.Response:
        """``PUT`` replaces the faults, ``POST`` changes some; ``outage_seconds`` starts an
        outage now. 400 when the body is not valid faults."""
        injector = self._sandbox.injector
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            outage_seconds = changes.pop("outage_seconds", None)
            if outage_seconds is not None:
                changes["outage_until"] = time.time() + float(outage_seconds)
            base = injector.faults.model_dump() if request.method == "POST" else {}
            faults = Faults.model_validate({**base, **changes})
        except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
            return web.json_response({"error": str(exc)}, status=400)
        injector.faults = faults
        return await self.get_faults(request)

    async def clear_faults(self, request: web.Request) -> web.Response:
        """``DELETE /_sandbox/faults``: no faults any more."""
        self._sandbox.injector.faults = Faults()
        return await self.get_faults(request)

    async def get_requests(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/requests``: the request log, optionally of one ``browser_id``."""
        return web.json_response(
            {"requests": self._sandbox.requests.entries(request.query.get("browser_id"))}
        )

    async def reset(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/reset``: everything as at start (``Sandbox.reset``), optionally
        with a new ``seed``."""
        seed = self._sandbox.seed
        if request.can_read_body:
            try:
                body = await request.json()
                if not isinstance(body, dict) or not isinstance(body.get("seed", 0), int):
                    raise ValueError('expected {"seed": <int>}')
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            seed = body.get("seed", seed)
        self._sandbox.reset(seed)
        return web.json_response({"ok": True})
