"""How an event body travels to the Stream API: three transports, one answer classification.

    post-basic    POST /v1.2/event/create.json, HTTP Basic (client key : API token),
                  body = the event JSON                          (AsyncAPI spec; asyncapi)
    post-events   POST /v1.2/events, no auth header, ``client_key`` inside the JSON body
                                                       (Sitecore's SDKs; sitecore default)
    get-query     GET /v1.2/event/create.json?client_key=<key>&message=<url-encoded JSON>
                                                        (Sitecore's direct HTTP docs)

Browser ids come from ``GET /v1.2/browser/create.json?client_key=<key>&message={}``
whatever the transport. This module is the one place that knows each path and each
dialect's default transport (``DEFAULT_TRANSPORT``); ``cdp.transport`` in the config
may choose another. ``open_transport`` picks the transport object once; it sends
through a ``Pool`` (``connector.cdp.http1.Http1Pool``, or the aiohttp one in
``client.py``), so every transport and browser-id creation share one HTTP path.

A GET carries the event in its URL, and URLs are not unbounded: proxies and servers
commonly refuse request lines over 8 KiB. An event whose URL would pass
``MAX_GET_URL_BYTES`` is therefore a permanent error for that record (dead letter),
answered without a request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Literal, Protocol
from urllib.parse import quote

from connector.cdp.answer import Answer, Outcome, classify, network_error

__all__ = [
    "BROWSER_PATH",
    "DEFAULT_TRANSPORT",
    "EVENTS_PATH",
    "EVENT_PATH",
    "MAX_GET_URL_BYTES",
    "TRANSPORTS",
    "TRANSPORT_CLASSES",
    "Pool",
    "Transport",
    "TransportName",
    "browser_target",
    "default_transport",
    "query_url",
    "splice_client_key",
]

TransportName = Literal["post-basic", "post-events", "get-query"]
TRANSPORTS: tuple[TransportName, ...] = ("post-basic", "post-events", "get-query")

EVENT_PATH = "/v1.2/event/create.json"
EVENTS_PATH = "/v1.2/events"
BROWSER_PATH = "/v1.2/browser/create.json"
#: Longest URL a get-query event may have (scheme, host, path and query), in bytes.
MAX_GET_URL_BYTES = 8192

#: The transport each dialect travels on unless ``cdp.transport`` says otherwise.
DEFAULT_TRANSPORT: Mapping[str, TransportName] = {
    "asyncapi": "post-basic",
    "sitecore": "post-events",
}

# What stays as is in a query value: unreserved characters and the JSON punctuation
# that is legal there (shorter URLs); every other byte is percent-encoded. This is on
# the hot path of get-query (a 480-byte VIEW: urllib's quote 31 µs, the byte table
# below 10 µs, the replace chain for printable ASCII 4.4 µs).
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~:,"
_QUOTED = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)].__getitem__
# '%' first, so that no escape written by a later replace is escaped again.
_PRINTABLE_ESCAPES = sorted(
    ((chr(b), f"%{b:02X}") for b in range(0x20, 0x7F) if b not in _UNRESERVED),
    key=lambda pair: pair[0] != "%",
)
_NOT_PRINTABLE_ASCII = re.compile(rb"[^\x20-\x7e]")


def _quote(data: bytes) -> str:
    """``urllib.parse.quote(data, safe=":,")``, faster."""
    if _NOT_PRINTABLE_ASCII.search(data):  # non-ASCII text: byte by byte
        return "".join(map(_QUOTED, data))
    text = data.decode("ascii")
    for char, escape in _PRINTABLE_ESCAPES:  # a compact JSON dump has a handful of them
        if char in text:
            text = text.replace(char, escape)
    return text


def default_transport(dialect: str) -> TransportName:
    """The transport ``dialect`` travels on unless the config says otherwise."""
    return DEFAULT_TRANSPORT[dialect]


def splice_client_key(body: bytes, key_json: bytes) -> bytes:
    """``{"client_key":<key>,...body}``: the key put into a serialized JSON object.

    ``key_json`` is the key already JSON-encoded. A byte splice, not a re-parse: the
    body is the dialect's compact dump, an object that starts with ``{``.
    """
    if body == b"{}":
        return b'{"client_key":' + key_json + b"}"
    return b'{"client_key":' + key_json + b"," + body[1:]


def query_url(event_url: str, client_key: str, body: bytes) -> str:
    """The GET URL carrying ``body`` (already percent-encoded; send it as is)."""
    return f"{event_url}?client_key={quote(client_key, safe='')}&message={_quote(body)}"


def browser_target(client_key: str) -> bytes:
    """The path and query that ask for a new browser id (already percent-encoded)."""
    return f"{BROWSER_PATH}?client_key={quote(client_key, safe='')}&message=%7B%7D".encode()


class Pool(Protocol):
    """Keep-alive HTTP to one origin (``Http1Pool``): POST to its event URL, GET a target.

    Both return ``(status, headers, body)`` or raise ``OSError`` / ``TimeoutError``."""

    async def post(self, body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """POST ``body`` to the pool's event URL."""
        ...

    async def get(self, target: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """GET ``target`` (path and query, already percent-encoded) on the pool's origin."""
        ...

    async def close(self) -> None:
        """Close every connection (``CdpClient.close``)."""
        ...


class Transport:
    """One way of sending events, over one pool; ``send`` never raises for I/O failures.

    Subclasses say how an event body becomes a request; browser ids are made the
    same way for all (``create_browser_id``).
    """

    name: TransportName
    path: str = EVENT_PATH
    sends_token = False  # only post-basic carries the API token (in a header)

    def __init__(self, pool: Pool, base_url: str, client_key: str) -> None:
        self.pool = pool
        self._browser_target = browser_target(client_key)

    async def send(self, body: bytes) -> Answer:
        """Send one serialized event and classify the answer."""
        raise NotImplementedError

    async def create_browser_id(self) -> Answer:
        """Ask the CDP for a new browser id: DELIVERED with ``ref`` set, or why not."""
        try:
            status, headers, data = await self.pool.get(self._browser_target)
        except (TimeoutError, OSError) as exc:
            return network_error(exc)
        answer = classify(status, headers, data)
        if answer.outcome is Outcome.DELIVERED and not answer.ref:
            return Answer(Outcome.RETRYABLE, answer.status, "browser/create answered without ref")
        return answer


class PostBasic(Transport):
    """The event JSON as the body; the pool's headers carry Basic credentials."""

    name = "post-basic"
    sends_token = True

    async def send(self, body: bytes) -> Answer:
        """POST the body as it is; the pool's Authorization header carries the credentials."""
        try:
            status, headers, data = await self.pool.post(body)
        except (TimeoutError, OSError) as exc:
            # Neither carries request headers in its text: the token never reaches a log.
            return network_error(exc)
        return classify(status, headers, data)


class PostEvents(Transport):
    """The event JSON with ``client_key`` spliced in, to ``/v1.2/events``."""

    name = "post-events"
    path = EVENTS_PATH

    def __init__(self, pool: Pool, base_url: str, client_key: str) -> None:
        super().__init__(pool, base_url, client_key)
        self._key_json = json.dumps(client_key).encode()

    async def send(self, body: bytes) -> Answer:
        """POST the body with ``client_key`` spliced in; no token is sent."""
        try:
            status, headers, data = await self.pool.post(splice_client_key(body, self._key_json))
        except (TimeoutError, OSError) as exc:
            return network_error(exc)
        return classify(status, headers, data)


class GetQuery(Transport):
    """The event JSON percent-encoded in the query of a GET."""

    name = "get-query"

    def __init__(self, pool: Pool, base_url: str, client_key: str) -> None:
        super().__init__(pool, base_url, client_key)
        self._origin_bytes = len(base_url.rstrip("/"))
        self._prefix = query_url(EVENT_PATH, client_key, b"")  # made once: ends "&message="

    async def send(self, body: bytes) -> Answer:
        """GET with the body percent-encoded in the query; an event whose URL would pass
        ``MAX_GET_URL_BYTES`` is PERMANENT (dead letter) without a request."""
        target = self._prefix + _quote(body)
        length = self._origin_bytes + len(target)
        if length > MAX_GET_URL_BYTES:
            return Answer(
                Outcome.PERMANENT,
                None,
                f"event too long for get-query: a {length}-byte URL "
                f"(limit {MAX_GET_URL_BYTES}); use post-events or post-basic",
            )
        try:
            status, headers, data = await self.pool.get(target.encode("ascii"))
        except (TimeoutError, OSError) as exc:
            return network_error(exc)
        return classify(status, headers, data)


TRANSPORT_CLASSES: Mapping[TransportName, type[Transport]] = {
    "post-basic": PostBasic,
    "post-events": PostEvents,
    "get-query": GetQuery,
}
