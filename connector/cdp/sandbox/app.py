"""The sandbox's aiohttp application: the Stream API's paths and the admin API on one server."""

from __future__ import annotations

from aiohttp import web

from connector.cdp.sandbox.admin import Admin
from connector.cdp.sandbox.server import DEFAULT_MAX_BODY, Sandbox
from connector.cdp.transport import BROWSER_PATH, EVENT_PATH, EVENTS_PATH

__all__ = ["build_app"]


def build_app(sandbox: Sandbox, *, max_body_bytes: int = DEFAULT_MAX_BODY) -> web.Application:
    """The aiohttp application serving ``sandbox``."""
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(EVENT_PATH, sandbox.create_event)
    app.router.add_get(EVENT_PATH, sandbox.create_event)
    app.router.add_post(EVENTS_PATH, sandbox.create_event)
    app.router.add_get(BROWSER_PATH, sandbox.create_browser)
    app.router.add_routes(Admin(sandbox).routes())
    return app
