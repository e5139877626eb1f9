"""The HTTP side: one keep-alive aiohttp session posting pre-serialized event bodies.

``CdpClient.send`` never raises for an HTTP answer or a network failure; it
returns an ``Answer`` (see ``connector.cdp.answer``) and the caller's retry
policy decides. The API token only lives inside the ready-made Authorization
header, which no repr, log line or error message shows.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Literal, Self

import aiohttp
from yarl import URL

# Answer, Outcome and classify are re-exported: the whole HTTP contract from one place.
from connector.cdp.answer import Answer, Outcome, classify, network_error, parse_retry_after
from connector.cdp.dialect import EVENT_PATH
from connector.cdp.http1 import Http1Pool
from connector.cdp.transport import (
    MAX_GET_URL_BYTES,
    TransportName,
    browser_create_url,
    event_url,
    query_url,
    splice_client_key,
)
from connector.errors import ConfigError
from connector.http_auth import basic_auth_header

__all__ = [
    "REGIONS",
    "Answer",
    "CdpClient",
    "Outcome",
    "basic_auth_header",
    "classify",
    "parse_retry_after",
    "resolve_base_url",
]

#: The spec's regional servers.
REGIONS: dict[str, str] = {
    "eu": "https://api-engage-eu.sitecorecloud.io",
    "us": "https://api-engage-us.sitecorecloud.io",
    "ap": "https://api-engage-ap.sitecorecloud.io",
    "jp": "https://api-engage-jpe.sitecorecloud.io",
}


def resolve_base_url(region: str | None, base_url: str | None = None) -> str:
    """The server to post to: ``base_url`` if given (it wins), else the region's URL."""
    if base_url:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"cdp.base_url must be an http(s) URL, got {base_url!r}")
        if url.user or url.password:
            raise ConfigError("cdp.base_url must not carry credentials; use the key/token")
        return base_url.rstrip("/")
    if region is None:
        raise ConfigError("cdp: set region (eu, us, ap, jp) or base_url")
    try:
        return REGIONS[region.lower()]
    except KeyError:
        raise ConfigError(
            f"cdp.region {region!r} is not one of {', '.join(REGIONS)} (or set base_url)"
        ) from None


class _Redacted:
    """Holds a secret string; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


class CdpClient:
    """Posts event bodies to one CDP endpoint over a bounded keep-alive pool.

    Use as ``async with CdpClient(...) as client: answer = await client.send(body)``.
    ``timeout`` bounds a whole request; ``connect_timeout`` (default min(timeout, 5 s))
    the TCP/TLS connect. ``max_connections`` caps open sockets; callers beyond it wait
    for a free one (still inside ``timeout``).
    """

    def __init__(
        self,
        base_url: str,
        client_key: str,
        api_token: str,
        *,
        timeout: float = 10.0,
        max_connections: int = 256,
        connect_timeout: float | None = None,
        path: str = EVENT_PATH,
        transport: TransportName = "post-basic",
        http_client: Literal["builtin", "aiohttp"] = "builtin",
    ) -> None:
        self._url = URL(base_url.rstrip("/") + path)
        self._auth = _Redacted(basic_auth_header(client_key, api_token))
        # Only post-basic authenticates with a header; the other transports carry the
        # (public, browser-visible) client key in the body or the query.
        self._transport = transport
        if transport != "post-basic":
            self._url = URL(event_url(base_url, transport))
        self._client_key = client_key
        self._key_json = json.dumps(client_key).encode()
        self._browser_url = URL(browser_create_url(base_url, client_key), encoded=True)
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, connect=min(timeout, 5.0) if connect_timeout is None else connect_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._http_client = http_client
        self._pool: Http1Pool | None = None

    def __repr__(self) -> str:
        return f"CdpClient(url={str(self._url)!r}, max_connections={self._max_connections})"

    @property
    def url(self) -> str:
        """The full URL events are posted to."""
        return str(self._url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the session (idempotent); must run inside the event loop that sends."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=(
                {"Authorization": self._auth.value, "Content-Type": "application/json"}
                if self._transport == "post-basic"
                else {"Content-Type": "application/json"}
            ),
            raise_for_status=False,
        )
        if self._http_client == "builtin" and self._transport == "post-basic":
            # The hot path: ~6x less CPU per event than aiohttp (docs/benchmarks.md).
            self._pool = Http1Pool(
                self._url,
                {"Authorization": self._auth.value, "Content-Type": "application/json"},
                limit=self._max_connections,
                timeout=self._timeout.total or 10.0,
                connect_timeout=self._timeout.connect or 5.0,
            )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def transport(self) -> TransportName:
        """How events travel (``connector.cdp.transport``)."""
        return self._transport

    async def send(self, body: bytes) -> Answer:
        """POST one serialized event and classify the answer; never raises for I/O failures."""
        session = self._session
        if session is None:
            raise RuntimeError("CdpClient.send before start() / async with")
        if self._transport != "post-basic":
            return await self._send_unauthenticated(session, body)
        if self._pool is not None:
            return await self._send_http1(self._pool, body)
        try:
            async with session.post(self._url, data=body, allow_redirects=False) as response:
                data = await response.read()
                return classify(response.status, response.headers, data)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # aiohttp's errors carry no request headers in their text, so the reason
            # is safe to log; the Authorization value never reaches it.
            return network_error(exc)

    async def _send_unauthenticated(self, session: aiohttp.ClientSession, body: bytes) -> Answer:
        """post-events (key in the body) or get-query (event in the URL)."""
        try:
            if self._transport == "post-events":
                data = splice_client_key(body, self._key_json)
                async with session.post(self._url, data=data, allow_redirects=False) as response:
                    return classify(response.status, response.headers, await response.read())
            url = query_url(str(self._url), self._client_key, body)
            if len(url) > MAX_GET_URL_BYTES:
                return Answer(
                    Outcome.PERMANENT,
                    None,
                    f"event too long for get-query: a {len(url)}-byte URL "
                    f"(limit {MAX_GET_URL_BYTES}); use post-events or post-basic",
                )
            async with session.get(URL(url, encoded=True), allow_redirects=False) as response:
                return classify(response.status, response.headers, await response.read())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return network_error(exc)

    async def create_browser_id(self) -> Answer:
        """Ask the CDP for a new browser id: DELIVERED with ``ref`` set, or why not."""
        session = self._session
        if session is None:
            raise RuntimeError("CdpClient.create_browser_id before start() / async with")
        try:
            async with session.get(self._browser_url, allow_redirects=False) as response:
                answer = classify(response.status, response.headers, await response.read())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return network_error(exc)
        if answer.outcome is Outcome.DELIVERED and not answer.ref:
            return Answer(Outcome.RETRYABLE, answer.status, "browser/create answered without ref")
        return answer

    async def _send_http1(self, pool: Http1Pool, body: bytes) -> Answer:
        try:
            status, headers, data = await pool.post(body)
        except (TimeoutError, OSError) as exc:
            # Neither carries request headers in its text: the token never reaches a log.
            return network_error(exc)
        return classify(status, headers, data)
