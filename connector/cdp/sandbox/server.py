"""A local stand-in for the CDP Stream API (``cdp-connector sandbox``).

Serves the three transports (``connector.cdp.transport``): ``POST
/v1.2/event/create.json`` with Basic credentials, ``POST /v1.2/events`` with
``client_key`` in the body, ``GET /v1.2/event/create.json?client_key=&message=``;
401 without the right credentials / key, 400 with a JSON body naming the
offending field, 201 with ``ref``/``status``/``version``/``client_key`` for a
valid event. ``GET /v1.2/browser/create.json?client_key=`` answers a new browser
id as ``ref``. Given ``--known-pos``, an event for any other point of sale is
answered 201 and dropped (counted in ``dropped``), as the real service does.
Records accepted events, checks each request (``checks``: body,
credentials, payload) and injects faults (``faults``); the command line is
``cli``; ``app`` serves it with the admin API (``admin``), no auth (a loopback test tool):

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
schemas (``spec``), so a bug in our models shows up in a test.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from connector.cdp.dialect import Dialect
from connector.cdp.sandbox.checks import Credentials, Refusal, read_event, validate
from connector.cdp.sandbox.faults import FaultInjector, Faults
from connector.cdp.sandbox.requests import RequestLog, RequestNote
from connector.cdp.sandbox.spec import SpecValidator

__all__ = ["DEFAULT_MAX_BODY", "Sandbox"]

API_VERSION = "1.2"
DEFAULT_MAX_BODY = 256 * 1024


class Sandbox:
    """State of one sandbox: credentials, recorded events, counters and faults.

    aiohttp calls ``create_event`` and ``create_browser`` on the sandbox's event loop
    (``app.build_app``); every answer (and a dropped connection) counts in ``by_status``."""

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
        self._credentials = Credentials(client_key, api_token)
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
        parsed = await read_event(request)
        if isinstance(parsed, dict):
            # Faulted requests count too: a retry is a request of the same guest.
            self.requests.identify(note, parsed.get("browser_id"), parsed.get("type"))
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.drop:
            return self._drop(request)
        if decision.status is not None:
            return self._error(_injected(decision.status, decision.retry_after))
        if (refusal := self._credentials.check(request, parsed)) is not None:
            return self._error(refusal)
        if isinstance(parsed, Refusal):
            return self._error(parsed)
        if (refusal := validate(parsed, self.dialect, self.spec)) is not None:
            return self._error(refusal)
        payload = parsed
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
            return self._error(_injected(decision.status, decision.retry_after))
        refusal = self._credentials.key_refused(request.query.get("client_key", ""))
        if refusal is not None:
            return self._error(refusal)
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

    def _error(self, refusal: Refusal) -> web.Response:
        self.by_status[str(refusal.status)] += 1
        body: dict[str, Any] = {"status": "ERROR", "error": refusal.message, "version": API_VERSION}
        if refusal.field is not None:
            body["field"] = refusal.field
        if refusal.errors is not None:
            body["errors"] = refusal.errors
        return web.json_response(body, status=refusal.status, headers=refusal.headers)

    def reset(self, seed: int | None) -> None:
        """Events, counters, the request log and faults as at start; random faults
        reseeded with ``seed`` (the admin API's ``POST /_sandbox/reset``)."""
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

    # -- lifetime -------------------------------------------------------------------------

    def open_record_file(self) -> None:
        """Open the JSONL file accepted events are appended to (``--record``), if any."""
        if self._record_path is not None:
            self._record = self._record_path.open("a", encoding="utf-8")

    def flush(self) -> None:
        """Flush the record file, so a reader sees every event accepted so far."""
        if self._record is not None:
            self._record.flush()

    def close(self) -> None:
        """Close the record file (at server shutdown)."""
        if self._record is not None:
            self._record.close()
            self._record = None


def _injected(status: int, retry_after: str | None) -> Refusal:
    """The answer of an injected error status (``faults``)."""
    return Refusal(
        status, "injected fault", headers={"Retry-After": retry_after} if retry_after else None
    )
