"""The HTTP side: one transport object over one keep-alive pool, chosen at start.

``CdpClient.send`` never raises for an HTTP answer or a network failure; it
returns an ``Answer`` (see ``connector.cdp.answer``) and the caller's retry
policy decides. Which transport (``connector.cdp.transport``) and which pool
(the builtin ``Http1Pool``, or aiohttp) is decided once in ``start``; sending
is then one call on the transport, with no branches. The API token only lives
inside the ready-made Authorization header, which no repr, log line or error
message shows.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
from yarl import URL

# Answer, Outcome and classify are re-exported: the whole HTTP contract from one place.
from connector.cdp.answer import Answer, Outcome, classify, parse_retry_after
from connector.cdp.http1 import Http1Pool
from connector.cdp.proxy import Proxy
from connector.cdp.transport import TRANSPORT_CLASSES, Transport, TransportName
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


class _AiohttpPool:
    """The ``Pool`` interface on an aiohttp session (``cdp.http_client: aiohttp``).

    The same proxy, TLS context and idle age as the builtin pool, decided by the caller:
    aiohttp's own reading of the environment (``trust_env``) stays off, so both clients
    take one decision (``connector.cdp.proxy``)."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        limit: int,
        timeout: aiohttp.ClientTimeout,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
        max_idle: float = 20.0,
    ) -> None:
        self._url = URL(url, encoded=True)
        self._origin = str(self._url.origin())
        self._proxy = proxy
        self._proxy_url = URL(proxy.url) if proxy else None
        self._proxy_auth = (
            aiohttp.BasicAuth.decode(proxy.authorization) if proxy and proxy.authorization else None
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limit,
                limit_per_host=0,
                ttl_dns_cache=300,
                ssl=ssl_context if ssl_context is not None else True,
                keepalive_timeout=max_idle,
            ),
            timeout=timeout,
            headers=dict(headers),
            raise_for_status=False,
            trust_env=False,
        )
        #: The builtin pool's count; aiohttp re-sends (or not) on its own terms.
        self.stale_retries = 0

    async def post(self, body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        return await self._exchange("POST", self._url, body)

    async def get(self, target: bytes) -> tuple[int, Mapping[str, str], bytes]:
        return await self._exchange("GET", URL(self._origin + target.decode(), encoded=True))

    async def _exchange(
        self, method: str, url: URL, body: bytes | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                allow_redirects=False,
                proxy=self._proxy_url,
                proxy_auth=self._proxy_auth,
            ) as response:
                return response.status, response.headers, await response.read()
        except aiohttp.ClientHttpProxyError as exc:  # the proxy answered CONNECT, not 2xx
            assert self._proxy is not None  # noqa: S101 - only raised through a proxy
            raise self._proxy.refused(exc.status, exc.message, f"{url.host}:{url.port}") from exc
        except aiohttp.ClientProxyConnectionError as exc:
            assert self._proxy is not None  # noqa: S101 - only raised through a proxy
            raise self._proxy.unreachable(exc) from exc
        except aiohttp.ClientError as exc:
            # What the transports handle: an OSError. aiohttp's errors carry no request
            # headers in their text, so the reason is safe to log.
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._session.close()


class CdpClient:
    """Sends event bodies to one CDP endpoint over a bounded keep-alive pool.

    Use as ``async with CdpClient(...) as client: answer = await client.send(body)``.
    ``timeout`` bounds a whole request; ``connect_timeout`` (default min(timeout, 5 s))
    the TCP/TLS connect. ``max_connections`` caps open sockets; callers beyond it wait
    for a free one (still inside ``timeout``). ``transport`` says how events travel,
    ``http_client`` which HTTP client carries them (the builtin one: ~4x less CPU per
    event than aiohttp, docs/benchmarks.md); both are fixed for the client's life.
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
        transport: TransportName = "post-basic",
        http_client: Literal["builtin", "aiohttp"] = "builtin",
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
        max_idle: float = 20.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._client_key = client_key
        self._kind = TRANSPORT_CLASSES[transport]
        self._auth = _Redacted(basic_auth_header(client_key, api_token))
        self._timeout = timeout
        self._connect_timeout = min(timeout, 5.0) if connect_timeout is None else connect_timeout
        self._max_connections = max_connections
        self._http_client = http_client
        self._ssl_context = ssl_context
        self._proxy = proxy
        self._max_idle = max_idle
        self._transport: Transport | None = None
        self._pool: Http1Pool | _AiohttpPool | None = None
        #: Send one serialized event; the transport's own ``send`` once started.
        self.send: Callable[[bytes], Coroutine[Any, Any, Answer]] = self._not_started

    def __repr__(self) -> str:
        via = f", proxy={self._proxy.url!r}" if self._proxy else ""
        return f"CdpClient(url={self.url!r}, max_connections={self._max_connections}{via})"

    @property
    def proxy(self) -> Proxy | None:
        """The forward proxy requests go through (None: direct)."""
        return self._proxy

    @property
    def stale_retries(self) -> int:
        """Requests re-sent on a new connection after a kept-alive one was found closed."""
        return self._pool.stale_retries if self._pool is not None else 0

    @property
    def url(self) -> str:
        """The URL events are sent to (for get-query: without the query)."""
        return self._base_url + self._kind.path

    @property
    def transport(self) -> TransportName:
        """How events travel (``connector.cdp.transport``)."""
        return self._kind.name

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
        """Open the pool and pick the transport (idempotent); must run inside the event
        loop that sends."""
        if self._transport is not None:
            return
        headers = {"Content-Type": "application/json"}
        if self._kind.sends_token:  # the other transports carry the public client key
            headers = {"Authorization": self._auth.value, **headers}
        pool: Http1Pool | _AiohttpPool
        if self._http_client == "builtin":
            pool = Http1Pool(
                self.url,
                headers,
                limit=self._max_connections,
                timeout=self._timeout,
                connect_timeout=self._connect_timeout,
                ssl_context=self._ssl_context,
                proxy=self._proxy,
                max_idle=self._max_idle,
            )
        else:
            pool = _AiohttpPool(
                self.url,
                headers,
                limit=self._max_connections,
                timeout=aiohttp.ClientTimeout(total=self._timeout, connect=self._connect_timeout),
                ssl_context=self._ssl_context,
                proxy=self._proxy,
                max_idle=self._max_idle,
            )
        self._pool = pool
        self._transport = self._kind(pool, self._base_url, self._client_key)
        self.send = self._transport.send

    async def close(self) -> None:
        """Close the pool and its connections."""
        if self._transport is not None:
            transport, self._transport = self._transport, None
            self.send = self._not_started
            await transport.pool.close()

    async def create_browser_id(self) -> Answer:
        """Ask the CDP for a new browser id: DELIVERED with ``ref`` set, or why not."""
        if self._transport is None:
            raise RuntimeError("CdpClient.create_browser_id before start() / async with")
        return await self._transport.create_browser_id()

    async def _not_started(self, body: bytes) -> Answer:
        raise RuntimeError("CdpClient.send before start() / async with")
