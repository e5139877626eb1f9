"""How the process runs: observability (probes, metrics, logs) and shutdown."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.config.base import Section

__all__ = ["ObservabilitySettings", "ShutdownSettings"]


class ObservabilitySettings(Section):
    """Where health and metrics are served, and how logs are written."""

    host: str = Field(
        "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the pod
        description="address of `/healthz`, `/readyz` and `/metrics`",
    )
    port: int = Field(9400, ge=0, le=65535, description="their port; 0 picks a free one")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`json` lines, or `text`; `auto`: json when not on a terminal"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="the lowest level logged"
    )


class ShutdownSettings(Section):
    """How long a revoke or a shutdown waits for requests in flight before committing."""

    drain_timeout_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="on SIGTERM/SIGINT and on revoke: how long the requests in flight may "
        "take to answer before the commit; records not posted yet are not waited for (the "
        "next owner reads them). SIGTERM → exit takes at most this plus a few seconds; a "
        "second signal exits at once",
    )
