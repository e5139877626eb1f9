"""The CDP side: the Stream API connection and where browser ids are kept."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from connector.cdp.proxy import Proxy, choose_proxy, parse_proxy_url
from connector.cdp.transport import default_transport
from connector.config.base import ENV_NAME, Section, read_secret
from connector.errors import ConfigError

__all__ = ["BrowserIdSettings", "CdpSettings", "CdpTlsSettings"]


class BrowserIdSettings(Section):
    """Where browser ids made for ``browser_id_for`` mappings are kept
    (``connector.delivery.browser_ids``)."""

    topic: str = Field(
        "cdp.browser-ids",
        min_length=1,
        description="compacted topic keeping visitor id → browser id, for mappings using "
        "`browser_id_for` ([mapping.md](mapping.md))",
    )
    create_topic: bool = Field(True, description="create it (compacted) when it is missing")
    partitions: int = Field(3, ge=1, le=10_000, description="when creating the topic")
    replication_factor: int = Field(
        -1, ge=-1, description="when creating the topic; -1: the broker's default"
    )
    max_entries: int = Field(
        1_000_000, ge=1, description="ids held in memory (LRU); evicted visitors get a new id"
    )
    timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="loading the topic at start, acknowledging a new id"
    )


class CdpTlsSettings(Section):
    """TLS to the API (also inside a proxy's CONNECT tunnel); server names are always checked."""

    ca_file: Path | None = Field(
        None,
        description="PEM bundle of the CAs to trust for the API instead of the system's (a "
        "TLS-inspecting proxy's CA, a private endpoint); unset: the system store "
        "(`SSL_CERT_FILE` if set)",
    )
    cert_file: Path | None = Field(
        None, description="client certificate (PEM) for mutual TLS; the key may be in it too"
    )
    key_file: Path | None = Field(
        None, description="private key (PEM, unencrypted) of `cert_file`, when not in it"
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> CdpTlsSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self

    def context(self) -> ssl.SSLContext:
        """The client context for the API: these CAs and certificate, names checked."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cdp.tls.ca_file {self.ca_file}: {_why(exc)}") from exc
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                files = f"{self.cert_file}" + (f", {self.key_file}" if self.key_file else "")
                raise ConfigError(f"cdp.tls.cert_file/key_file ({files}): {_why(exc)}") from exc
        context.check_hostname = True  # the default's; said here so that no one drops it
        context.verify_mode = ssl.CERT_REQUIRED
        return context


def _why(exc: OSError) -> str:
    return str(exc) if isinstance(exc, ssl.SSLError) else (exc.strerror or str(exc))


class CdpSettings(Section):
    """The Stream API connection: dialect, transport, region or base URL, credentials,
    timeout; read by ``pipeline.build_client``, ``check`` and the browser-id store."""

    dialect: Literal["asyncapi", "sitecore"] = Field(
        "asyncapi",
        description="payload models: `asyncapi` (the AsyncAPI spec) or `sitecore` (Sitecore "
        "data model 2.1)",
    )
    transport: Literal["post-basic", "post-events", "get-query"] | None = Field(
        None,
        description="`post-basic` (POST `/v1.2/event/create.json`, Basic auth; asyncapi's "
        "default), `post-events` (POST `/v1.2/events`, `client_key` in the body; sitecore's "
        "default), `get-query` (GET with `?client_key=…&message=…`; events whose URL would "
        "pass 8 KiB are dead-lettered). The keyed transports need no API token",
    )
    browser_ids: BrowserIdSettings = BrowserIdSettings()
    points_of_sale: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="the tenant's points of sale; required in the `sitecore` dialect. An "
        "event whose `pos` is not one of them is refused: a constant at start-up, a value "
        "from the record per record (dead-lettered). Sitecore accepts an unknown pos and "
        "silently drops the event; `cdp-connector check` probes each one",
    )
    region: Literal["eu", "us", "ap", "jp"] | None = Field(
        "eu", description="the Stream API's regional server (servers from the spec)"
    )
    base_url: str | None = Field(
        None, description="overrides the region: the sandbox, a proxy, a new region"
    )
    client_key_env: str | None = Field(
        "CDP_CLIENT_KEY",
        pattern=ENV_NAME,
        description="environment variable holding the client key",
    )
    client_key_file: Path | None = Field(
        None, description="mounted file holding the client key (wins over the variable)"
    )
    api_token_env: str | None = Field(
        "CDP_API_TOKEN",
        pattern=ENV_NAME,
        description="environment variable holding the API token (`post-basic` only)",
    )
    api_token_file: Path | None = Field(
        None, description="mounted file holding the API token (wins over the variable)"
    )
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="one whole request")
    http_client: Literal["builtin", "aiohttp"] = Field(
        "builtin",
        description="for every transport and browser ids: `builtin` (the connector's lean "
        "HTTP/1.1 client, about 4-6x less CPU per event; [benchmarks.md](benchmarks.md)) or "
        "`aiohttp`",
    )

    proxy: str | None = Field(
        None,
        description="forward proxy for all CDP traffic, `http://host:port` (https APIs "
        "through a CONNECT tunnel); wins over `HTTPS_PROXY`/`HTTP_PROXY`, and `NO_PROXY` "
        "still applies. No credentials here: `proxy_username_*`, `proxy_password_*` "
        "([operations.md](operations.md#running-behind-a-proxy))",
    )
    proxy_from_environment: bool = Field(
        True,
        description="without `proxy`: use `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (and "
        "lowercase) as curl does",
    )
    proxy_username_env: str | None = Field(
        "CDP_PROXY_USERNAME",
        pattern=ENV_NAME,
        description="environment variable holding the proxy user (unset or empty: no "
        "proxy authentication, unless the `HTTPS_PROXY` URL carries it)",
    )
    proxy_username_file: Path | None = Field(
        None, description="mounted file holding the proxy user (wins over the variable)"
    )
    proxy_password_env: str | None = Field(
        "CDP_PROXY_PASSWORD",
        pattern=ENV_NAME,
        description="environment variable holding the proxy password",
    )
    proxy_password_file: Path | None = Field(
        None, description="mounted file holding the proxy password (wins over the variable)"
    )
    tls: CdpTlsSettings = CdpTlsSettings()
    keepalive_max_idle_seconds: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="a kept-alive connection idle longer is closed, not reused (proxies "
        "and load balancers drop idle ones silently; keep it below theirs)",
    )

    @model_validator(mode="after")
    def _proxy_shape(self) -> CdpSettings:
        if self.proxy is not None:
            try:
                parse_proxy_url(self.proxy, "proxy", credentials_allowed=False)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _points_of_sale_in_sitecore(self) -> CdpSettings:
        if self.dialect == "sitecore" and not self.points_of_sale:
            raise ValueError(
                "points_of_sale is required in the sitecore dialect: list the tenant's points "
                "of sale (e.g. points_of_sale: [shop.example.com]); Sitecore accepts an event "
                "with any other pos and silently drops it"
            )
        return self

    @model_validator(mode="after")
    def _base_url_shape(self) -> CdpSettings:
        if self.base_url is not None and not re.match(r"https?://[^/\s]+", self.base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.base_url is None and self.region is None:
            raise ValueError("give a region (eu, us, ap, jp) or a base_url")
        return self

    def client_key(self) -> SecretStr:
        """The client key from its env variable or file; ConfigError when neither has one."""
        return self._required_secret(self.client_key_env, self.client_key_file, "client_key")

    @property
    def effective_transport(self) -> Literal["post-basic", "post-events", "get-query"]:
        """``transport``, or the dialect's default."""
        return self.transport or default_transport(self.dialect)

    def api_token_if_needed(self) -> str:
        """The API token for post-basic; the other transports send none (empty string)."""
        if self.effective_transport != "post-basic":
            return ""
        return self.api_token().get_secret_value()

    def api_token(self) -> SecretStr:
        """The API token from its env variable or file; ConfigError when neither has one."""
        return self._required_secret(self.api_token_env, self.api_token_file, "api_token")

    def proxy_for(self, base_url: str) -> Proxy | None:
        """The proxy requests to ``base_url`` go through (``connector.cdp.proxy``)."""
        user = read_secret(self.proxy_username_env, self.proxy_username_file, "cdp.proxy_username")
        password = read_secret(
            self.proxy_password_env, self.proxy_password_file, "cdp.proxy_password"
        )
        credentials = None
        if user is not None:
            secret = password.get_secret_value() if password is not None else ""
            credentials = (user.get_secret_value(), secret)
        return choose_proxy(
            base_url, self.proxy, credentials, from_environment=self.proxy_from_environment
        )

    @staticmethod
    def _required_secret(env: str | None, file: Path | None, name: str) -> SecretStr:
        value = read_secret(env, file, f"cdp.{name}")
        if value is None:
            where = f"file {file}" if file else f"environment variable {env}"
            raise ConfigError(f"cdp.{name}: no value in {where}")
        return value
