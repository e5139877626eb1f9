"""What every config section shares: unknown keys refused, frozen; env names; secrets."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from connector.errors import ConfigError

__all__ = ["ENV_NAME", "Section", "read_secret"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# What Kubernetes accepts as an environment variable name (the chart fills them).
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """A secret from a mounted file (preferred when set) or an environment variable."""
    if file is not None:
        try:
            return SecretStr(file.read_text().strip())
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    if env:
        value = os.environ.get(env)
        return SecretStr(value) if value else None
    return None
