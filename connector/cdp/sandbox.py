"""A local stand-in for the CDP Stream API (``cdp-connector sandbox``).

Serves the three transports (``connector.cdp.transport``): ``POST
/v1.2/event/create.json`` with Basic credentials, ``POST /v1.2/events`` with
``client_key`` in the body, ``GET /v1.2/event/create.json?client_key=&message=``;
401 without the right credentials / key, 400 with a JSON body naming the
offending field, 201 with ``ref``/``status``/``version``/``client_key`` for a
valid event. ``GET /v1.2/browser/create.json?client_key=`` answers a new browser
id as ``ref``. Given ``--known-pos``, an event for any other point of sale is
answered 201 and dropped (counted in ``dropped``), as the real service does.
Records accepted events and injects faults (``sandbox_faults``); the command
line is ``sandbox_cli``. Admin API, no
auth (it is a loopback test tool):

    GET    /_sandbox/events?type=T&offset=N&limit=N   accepted events, oldest first
    DELETE /_sandbox/events                           forget them
    GET    /_sandbox/stats                            counts by status and type, guest overlaps
    GET    /_sandbox/requests?browser_id=B            event requests: start, end, guest, status
    GET    /_sandbox/faults                           current faults
    PUT    /_sandbox/faults  {...}                    replace faults (missing = none)
    POST   /_sandbox/faults  {...}                    change only the given fields
    DELETE /_sandbox/faults                           no faults
    POST   /_sandbox/reset   {"seed": N}              events, stats, faults as at start;
                                                      random faults reseeded (N or --seed)

Faults JSON also takes ``outage_seconds`` (outage from now for that long).

Bodies are validated with the dialect's payload models, or — ``spec`` given
(``--spec FILE``, asyncapi only) — with the AsyncAPI document's own JSON
schemas (``sandbox_spec``), so a bug in our models shows up in a test.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from pydantic import ValidationError

from connector.cdp.dialect import Dialect
from connector.cdp.sandbox_faults import FaultInjector, Faults
from connector.cdp.sandbox_requests import RequestLog, RequestNote
from connector.cdp.sandbox_spec import SpecValidator
from connector.cdp.transport import BROWSER_PATH, EVENT_PATH, EVENTS_PATH

__all__ = ["Sandbox", "build_app"]

API_VERSION = "1.2"
DEFAULT_MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a request carries no event object (answered after faults and credentials)."""

    status: int
    message: str


class Sandbox:
    """State of one sandbox: credentials, recorded events, counters and faults."""

    def __init__(
        self,
        client_key: str,
        api_token: str,
        *,
        dialect: Dialect | None,
        faults: Faults | None = None,
        seed: int | None = None,
        record_file: Path | None = None,
        max_records: int = 1_000_000,
        known_pos: frozenset[str] | None = None,
        spec: SpecValidator | None = None,
    ) -> None:
        self.client_key = client_key
        self._expected = f"{client_key}:{api_token}".encode()
        self._expected_header = "Basic " + base64.b64encode(self._expected).decode()
        self.dialect = dialect
        self.spec = spec
        self.seed = seed
        self.requests = RequestLog(max_records)
        self.initial_faults = faults or Faults()
        self.injector = FaultInjector(self.initial_faults, seed=seed)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_records)
        self.recorded = 0
        self.by_status: collections.Counter[str] = collections.Counter()
        self.by_type: collections.Counter[str] = collections.Counter()
        self.concurrent = 0
        self.max_concurrent = 0
        self.known_pos = known_pos
        self.dropped_by_pos: collections.Counter[str] = collections.Counter()
        self.browsers_created = 0
        self._key_json = json.dumps(client_key).encode()
        self._record_path = record_file
        self._record: IO[str] | None = None

    def __repr__(self) -> str:
        return f"Sandbox(client_key={self.client_key!r}, recorded={self.recorded})"

    # -- the Stream API -------------------------------------------------------------------

    async def create_event(self, request: web.Request) -> web.StreamResponse:
        """POST /v1.2/event/create.json, POST /v1.2/events, GET /v1.2/event/create.json."""
        # How many requests are being served at once shows whether a client really
        # posts concurrently (reported as max_concurrent in the stats).
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        note = self.requests.open(time.time())
        try:
            response = await self._create_event(request, note)
            note.status = str(response.status)
            return response
        finally:
            self.concurrent -= 1
            self.requests.close(note, time.time())

    async def _create_event(self, request: web.Request, note: RequestNote) -> web.StreamResponse:
        decision = self.injector.decide()
        parsed = await self._read_event(request)
        if isinstance(parsed, dict):
            # Faulted requests count too: a retry is a request of the same guest.
            self.requests.identify(note, parsed.get("browser_id"), parsed.get("type"))
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.drop:
            return self._drop(request)
        if decision.status is not None:
            headers = {"Retry-After": decision.retry_after} if decision.retry_after else None
            return self._error(decision.status, "injected fault", headers=headers)
        denied = self._authenticate(request, parsed)
        if denied is not None:
            return denied
        if isinstance(parsed, _Refusal):
            return self._error(parsed.status, parsed.message, field="body")
        payload = parsed
        if self.spec is not None:
            errors = self.spec.errors(payload)
            if errors:
                return self._refuse(errors)
        elif self.dialect is not None:
            try:
                self.dialect.validate(payload)
            except ValidationError as exc:
                return self._invalid(exc)
            except RecursionError:
                return self._error(400, "body nests too deeply", field="body")
        event_type = payload.get("type")
        event_type = event_type if isinstance(event_type, str) else "?"
        ref = str(uuid.uuid4())
        pos = payload.get("pos")
        if self.known_pos is not None and pos not in self.known_pos:
            # The real service answers success and silently drops the event.
            self.dropped_by_pos[str(pos)] += 1
        else:
            self._record_event(ref, event_type, payload)
        note.ref = ref
        return self._ok(ref)

    async def create_browser(self, request: web.Request) -> web.StreamResponse:
        """GET /v1.2/browser/create.json?client_key=K&message={}: a new browser id."""
        decision = self.injector.decide()
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.status is not None:
            headers = {"Retry-After": decision.retry_after} if decision.retry_after else None
            return self._error(decision.status, "injected fault", headers=headers)
        if not hmac.compare_digest(request.query.get("client_key", ""), self.client_key):
            return self._error(401, "unknown client_key", field="client_key")
        self.browsers_created += 1
        return self._ok(str(uuid.uuid4()))

    def _ok(self, ref: str) -> web.Response:
        self.by_status["201"] += 1
        return web.Response(
            status=201,
            body=b'{"ref":"%s","status":"OK","version":"%s","client_key":%s}'
            % (ref.encode(), API_VERSION.encode(), self._key_json),
            content_type="application/json",
        )

    async def _read_event(self, request: web.Request) -> dict[str, Any] | _Refusal:
        """The event object of a request on any transport, or why there is none.

        Read before faults and credentials are looked at, so every request is
        attributed to its guest; the answer keeps the order faults, credentials, body.
        """
        if request.method == "GET":  # get-query: the event is the message parameter
            body = request.query.get("message", "").encode()
        else:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _Refusal(413, "body too large")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            return _Refusal(400, f"body is not valid JSON: {str(exc)[:200]}")
        if not isinstance(payload, dict):
            return _Refusal(400, "body must be a JSON object (one event)")
        return payload

    def _authenticate(
        self, request: web.Request, parsed: dict[str, Any] | _Refusal
    ) -> web.Response | None:
        """The 401 answer for a request without the right credentials; None if allowed."""
        if request.method == "GET":
            if not hmac.compare_digest(request.query.get("client_key", ""), self.client_key):
                return self._error(401, "unknown client_key", field="client_key")
        elif request.path != EVENTS_PATH:
            if not self._authorized(request.headers.get("Authorization")):
                return self._error(
                    401, "unauthorized", headers={"WWW-Authenticate": 'Basic realm="cdp"'}
                )
        elif isinstance(parsed, dict):  # post-events: the key is in the body
            key = parsed.pop("client_key", None)
            if not isinstance(key, str) or not hmac.compare_digest(key, self.client_key):
                return self._error(401, "unknown client_key", field="client_key")
        return None

    def _authorized(self, header: str | None) -> bool:
        if header is None:
            return False
        if header == self._expected_header:
            return True
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(raw, self._expected)

    def _record_event(self, ref: str, event_type: str, payload: dict[str, Any]) -> None:
        entry = {"ref": ref, "received_at": time.time(), "event": payload}
        self.events.append(entry)
        self.recorded += 1
        self.by_type[event_type] += 1
        if self._record is not None:
            self._record.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def _drop(self, request: web.Request) -> web.StreamResponse:
        """Close the connection without an answer (the client sees a disconnect)."""
        self.by_status["dropped"] += 1
        if request.transport is not None:
            request.transport.abort()
        # aiohttp cannot write to the aborted transport; this ends the handler cleanly.
        raise asyncio.CancelledError

    def _error(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> web.Response:
        self.by_status[str(status)] += 1
        body: dict[str, Any] = {"status": "ERROR", "error": message, "version": API_VERSION}
        if field is not None:
            body["field"] = field
        if errors is not None:
            body["errors"] = errors
        return web.json_response(body, status=status, headers=headers)

    def _invalid(self, exc: ValidationError) -> web.Response:
        by_field: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False, include_input=False):
            by_field.setdefault(_field_name(err["loc"]), []).append(err["msg"])
        # One entry per field: an ext value refused by every union member reads as one error.
        errors = [{"field": f, "message": " or ".join(msgs)} for f, msgs in by_field.items()]
        return self._refuse(errors)

    def _refuse(self, errors: list[dict[str, str]]) -> web.Response:
        """400 naming the first offending field, with every error listed."""
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return self._error(
            400, f"{first['field']}: {first['message']}", field=first["field"], errors=errors
        )

    # -- admin ----------------------------------------------------------------------------

    async def get_events(self, request: web.Request) -> web.Response:
        self.flush()
        wanted = request.query.get("type")
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "100000"))
        except ValueError:
            return web.json_response({"error": "offset/limit must be integers"}, status=400)
        events = [e for e in self.events if wanted is None or e["event"].get("type") == wanted]
        return web.json_response(
            {"total": self.recorded, "events": events[offset : offset + limit]}
        )

    async def delete_events(self, request: web.Request) -> web.Response:
        self.events.clear()
        return web.json_response({"ok": True})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": sum(self.by_status.values()),
                "accepted": self.recorded,
                "by_status": dict(self.by_status),
                "by_type": dict(self.by_type),
                "max_concurrent": self.max_concurrent,
                "dropped": sum(self.dropped_by_pos.values()),
                "dropped_by_pos": dict(self.dropped_by_pos),
                "browsers_created": self.browsers_created,
                **self.requests.stats(),
            }
        )

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({**self.injector.faults.model_dump(), "now": time.time()})

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            outage_seconds = changes.pop("outage_seconds", None)
            if outage_seconds is not None:
                changes["outage_until"] = time.time() + float(outage_seconds)
            base = self.injector.faults.model_dump() if request.method == "POST" else {}
            faults = Faults.model_validate({**base, **changes})
        except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
            return web.json_response({"error": str(exc)}, status=400)
        self.injector.faults = faults
        return await self.get_faults(request)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.injector.faults = Faults()
        return await self.get_faults(request)

    async def get_requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"requests": self.requests.entries(request.query.get("browser_id"))}
        )

    async def reset(self, request: web.Request) -> web.Response:
        seed = self.seed
        if request.can_read_body:
            try:
                body = await request.json()
                if not isinstance(body, dict) or not isinstance(body.get("seed", 0), int):
                    raise ValueError('expected {"seed": <int>}')
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            seed = body.get("seed", seed)
        self.injector.reseed(seed)
        self.requests.clear()
        self.events.clear()
        self.recorded = 0
        self.by_status.clear()
        self.by_type.clear()
        self.dropped_by_pos.clear()
        self.browsers_created = 0
        self.max_concurrent = self.concurrent
        self.injector.faults = self.initial_faults
        return web.json_response({"ok": True})

    # -- lifetime -------------------------------------------------------------------------

    def open_record_file(self) -> None:
        if self._record_path is not None:
            self._record = self._record_path.open("a", encoding="utf-8")

    def flush(self) -> None:
        if self._record is not None:
            self._record.flush()

    def close(self) -> None:
        if self._record is not None:
            self._record.close()
            self._record = None


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p != "[key]"]
    if len(parts) > 2 and parts[0] == "ext":
        parts = parts[:2]  # drop the union member tried ("bool", "int", ...)
    return ".".join(parts) or "body"


def build_app(sandbox: Sandbox, *, max_body_bytes: int = DEFAULT_MAX_BODY) -> web.Application:
    """The aiohttp application serving ``sandbox``."""
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(EVENT_PATH, sandbox.create_event)
    app.router.add_get(EVENT_PATH, sandbox.create_event)
    app.router.add_post(EVENTS_PATH, sandbox.create_event)
    app.router.add_get(BROWSER_PATH, sandbox.create_browser)
    app.router.add_get("/_sandbox/events", sandbox.get_events)
    app.router.add_delete("/_sandbox/events", sandbox.delete_events)
    app.router.add_get("/_sandbox/stats", sandbox.get_stats)
    app.router.add_get("/_sandbox/requests", sandbox.get_requests)
    app.router.add_get("/_sandbox/faults", sandbox.get_faults)
    app.router.add_put("/_sandbox/faults", sandbox.set_faults)
    app.router.add_post("/_sandbox/faults", sandbox.set_faults)
    app.router.add_delete("/_sandbox/faults", sandbox.clear_faults)
    app.router.add_post("/_sandbox/reset", sandbox.reset)
    return app
