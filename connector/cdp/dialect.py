"""Dialects: a set of payload models plus the default transport they travel on.

``get_dialect("asyncapi")`` is the AsyncAPI spec (``connector.cdp.asyncapi``);
another dialect registers itself with ``register_dialect`` from its own module
``connector.cdp.<name>``, which ``get_dialect`` imports on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from connector.errors import ConfigError

__all__ = ["EVENT_PATH", "Dialect", "available_dialects", "get_dialect", "register_dialect"]

#: Where the AsyncAPI spec posts events (Basic auth, JSON body).
EVENT_PATH = "/v1.2/event/create.json"

_CUSTOM = "CUSTOM"


@dataclass(frozen=True)
class Dialect:
    """Payload models keyed by event type, and how events are sent.

    ``models`` holds one model per reserved type name plus ``"CUSTOM"``, the
    model for every other (custom) type name. ``transport`` names the way the
    client sends a body by default (``connector.cdp.transport``: ``"post-basic"`` is POST
    ``path`` with HTTP Basic auth); ``cdp.transport`` in the config overrides it.
    """

    name: str
    models: Mapping[str, type[BaseModel]]
    path: str = EVENT_PATH
    transport: str = "post-basic"
    _reserved: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if _CUSTOM not in self.models:
            raise ValueError(f"dialect {self.name!r} has no {_CUSTOM} model")
        object.__setattr__(self, "_reserved", frozenset(self.models) - {_CUSTOM})

    def model_for(self, event_type: str) -> type[BaseModel]:
        """The model for ``event_type``: its own, or the custom-event model."""
        if event_type in self._reserved:
            return self.models[event_type]
        return self.models[_CUSTOM]

    def validate(self, payload: Mapping[str, Any]) -> BaseModel:
        """Validate one event payload; raises ``pydantic.ValidationError`` naming the field."""
        event_type = payload.get("type") if isinstance(payload, Mapping) else None
        if isinstance(event_type, str) and event_type in self._reserved:
            return self.models[event_type].model_validate(payload)
        return self.models[_CUSTOM].model_validate(payload)

    def dump(self, model: BaseModel) -> bytes:
        """Compact JSON of a validated event: no unset fields, no nulls."""
        return model.__pydantic_serializer__.to_json(model, exclude_none=True)

    def validate_and_dump(self, payload: Mapping[str, Any]) -> bytes:
        """``dump(validate(payload))``: the body to post."""
        return self.dump(self.validate(payload))


_DIALECTS: dict[str, Dialect] = {}


def register_dialect(dialect: Dialect) -> Dialect:
    """Make ``dialect`` available to ``get_dialect`` under its name."""
    _DIALECTS[dialect.name] = dialect
    return dialect


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; ``ConfigError`` if there is none."""
    if name not in _DIALECTS and name.isidentifier() and name != "dialect":
        try:
            importlib.import_module(f"connector.cdp.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"connector.cdp.{name}":
                raise
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown CDP dialect {name!r} (known: {', '.join(available_dialects())})"
        ) from None


def available_dialects() -> list[str]:
    """Names of the dialects registered so far (imports the built-in one)."""
    importlib.import_module("connector.cdp.asyncapi")
    return sorted(_DIALECTS)
