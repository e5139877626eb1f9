"""The CDP side: the Stream API connection and where browser ids are kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from connector.cdp.transport import default_transport
from connector.config.base import ENV_NAME, _Section, read_secret
from connector.errors import ConfigError

__all__ = ["BrowserIdSettings", "CdpSettings"]


class BrowserIdSettings(_Section):
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


class CdpSettings(_Section):
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

    @staticmethod
    def _required_secret(env: str | None, file: Path | None, name: str) -> SecretStr:
        value = read_secret(env, file, f"cdp.{name}")
        if value is None:
            where = f"file {file}" if file else f"environment variable {env}"
            raise ConfigError(f"cdp.{name}: no value in {where}")
        return value
