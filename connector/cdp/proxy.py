"""The forward proxy CDP requests go through, if any: which one, and its errors.

``choose_proxy`` decides once, at start, for the API's origin, as curl and the Python
ecosystem do:

1. ``NO_PROXY`` / ``no_proxy`` naming the API's host (or a domain it is in, or ``*``)
   means no proxy at all, whatever else is set (Python's ``urllib`` reads the list).
2. Else the configured proxy (``cdp.proxy``) if there is one,
3. else ``HTTPS_PROXY`` (for an https API) or ``HTTP_PROXY`` (for http), the lowercase
   spelling winning, unless ``cdp.proxy_from_environment`` is false.

Credentials for the proxy come from the config's secrets (environment variable or
mounted file) and win over any in an environment variable's URL; ``cdp.proxy`` itself
never carries them. Both HTTP clients take the same ``Proxy``: an https API is reached
through a CONNECT tunnel with TLS to the API inside it (the proxy sees host and port,
never an event); an http one with absolute-form requests to the proxy.

Errors, all ``ConnectionError`` (what the transports turn into an answer):

    ProxyError            the proxy is unreachable, closed the tunnel, or answered
     │                    CONNECT with anything but 2xx: retryable, an outage
     └── ProxyAuthRefused  407 (or 401: tinyproxy's answer) to CONNECT: ``network_error``
                          makes it FATAL (halt), as a 401 from the API is
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from yarl import URL

from connector.cdp.http1_parser import Http1Error
from connector.errors import ConfigError
from connector.http_auth import basic_auth_header

__all__ = ["Proxy", "ProxyAuthRefused", "ProxyError", "choose_proxy"]


class ProxyError(Http1Error):
    """The proxy, not the API, failed the request; ``status`` is its answer to CONNECT."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProxyAuthRefused(ProxyError):
    """The proxy answered 407: its credentials are missing or wrong."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """An ``http://host:port`` forward proxy and the Proxy-Authorization to send it."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``http://host:port`` (no credentials: safe to log)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:
        return f"proxy {self.url}"

    def connect_request(self, host: str, port: int) -> bytes:
        """The CONNECT request that opens a tunnel to ``host:port``."""
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.authorization:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def refused(self, status: int, reason: str, target: str) -> ProxyError:
        """The error for a CONNECT to ``target`` answered ``status``."""
        if status in (401, 407):  # 407 by the book; some proxies (tinyproxy) say 401
            given = "wrong" if self.authorization else "missing (none configured)"
            return ProxyAuthRefused(
                f"{self} refused its credentials (HTTP {status} to CONNECT; {given}): fix "
                f"cdp.proxy_username/proxy_password",
                status,
            )
        return ProxyError(
            f"{self} answered CONNECT {target} with HTTP {status} {reason[:80]} "
            "(the proxy's answer: the CDP was not reached through it)",
            status,
        )

    def unreachable(self, exc: BaseException) -> ProxyError:
        """The error for a proxy that could not be reached (or closed the tunnel)."""
        detail = str(exc) or type(exc).__name__
        return ProxyError(f"{self} unreachable (the CDP was not reached): {detail[:200]}")


def parse_proxy_url(value: str, where: str, *, credentials_allowed: bool) -> URL:
    """``value`` as an http proxy URL (``host:port`` alone means http://)."""
    url = URL(value if "://" in value else f"http://{value}")
    if url.scheme != "http" or not url.host:
        shown = f"{url.scheme}://{url.host or ''}" + (f":{url.port}" if url.port else "")
        raise ConfigError(
            f"{where}: {shown} is not an http://host:port proxy URL "
            "(TLS to the proxy itself is not supported; the CDP's own TLS runs inside "
            "the tunnel)"
        )
    if (url.user or url.password) and not credentials_allowed:
        raise ConfigError(
            f"{where} must not carry credentials; set proxy_username_env / "
            "proxy_password_env (or _file)"
        )
    return url


def choose_proxy(
    target: str,
    configured: str | None,
    credentials: tuple[str, str] | None,
    *,
    from_environment: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Proxy | None:
    """The proxy requests to ``target`` (the API's URL) go through, or None (module doc).

    ``credentials`` (user, password) from the config win over any in an environment
    variable's URL. Raises ConfigError for a proxy URL that is not http://host:port."""
    env = os.environ if environ is None else environ
    url = URL(target)
    host = url.host or ""
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    # Documented in urllib, missing from typeshed's stubs.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if no_proxy and bypass(f"{host}:{url.port}", {"no": no_proxy}):
        return None
    if configured:
        proxy_url = parse_proxy_url(configured, "cdp.proxy", credentials_allowed=False)
    elif from_environment:
        name = "https_proxy" if url.scheme == "https" else "http_proxy"
        value = env.get(name) or env.get(name.upper())
        if not value:
            return None
        proxy_url = parse_proxy_url(value, f"${name.upper()}", credentials_allowed=True)
    else:
        return None
    if credentials is None and proxy_url.user is not None:
        credentials = (proxy_url.user, proxy_url.password or "")
    authorization = basic_auth_header(*credentials) if credentials else None
    port = proxy_url.port or 80
    return Proxy(proxy_url.host or "", port, authorization)
