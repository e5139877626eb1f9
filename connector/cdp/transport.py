"""How an event body travels to the Stream API: three transports, one answer classification.

    post-basic    POST /v1.2/event/create.json, HTTP Basic (client key : API token),
                  body = the event JSON                          (AsyncAPI spec; asyncapi)
    post-events   POST /v1.2/events, no auth header, ``client_key`` inside the JSON body
                                                       (Sitecore's SDKs; sitecore default)
    get-query     GET /v1.2/event/create.json?client_key=<key>&message=<url-encoded JSON>
                                                        (Sitecore's direct HTTP docs)

Browser ids come from ``GET /v1.2/browser/create.json?client_key=<key>&message={}``
whatever the transport. Kept apart from the models: a dialect names its default
transport, the config may choose another.

A GET carries the event in its URL, and URLs are not unbounded: proxies and servers
commonly refuse request lines over 8 KiB. An event whose URL would pass
``MAX_GET_URL_BYTES`` is therefore a permanent error for that record (dead letter),
answered without a request.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

__all__ = [
    "BROWSER_PATH",
    "EVENTS_PATH",
    "EVENT_PATH",
    "MAX_GET_URL_BYTES",
    "TRANSPORTS",
    "TransportName",
    "browser_create_url",
    "default_transport",
    "event_url",
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

# JSON punctuation that is legal in a query string stays as is: shorter URLs.
_SAFE = ":,"


def default_transport(dialect: str) -> TransportName:
    """The transport a dialect travels on unless the config says otherwise."""
    return "post-events" if dialect == "sitecore" else "post-basic"


def event_url(base_url: str, transport: TransportName) -> str:
    """Where events go (for get-query: without the query)."""
    return base_url.rstrip("/") + (EVENTS_PATH if transport == "post-events" else EVENT_PATH)


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
    return f"{event_url}?client_key={quote(client_key, safe='')}&message={quote(body, safe=_SAFE)}"


def browser_create_url(base_url: str, client_key: str) -> str:
    """The URL that asks for a new browser id (already percent-encoded)."""
    key = quote(client_key, safe="")
    return f"{base_url.rstrip('/')}{BROWSER_PATH}?client_key={key}&message=%7B%7D"
