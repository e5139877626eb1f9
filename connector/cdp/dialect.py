"""Dialects: a set of payload models plus the default transport they travel on.

Two dialects exist and the config's ``cdp.dialect`` Literal names exactly these:
``asyncapi`` (``spec/cdp-stream-api.asyncapi.yaml``, models in ``models.py``) and
``sitecore`` (Sitecore's data model 2.1 as its SDKs send it, ``sitecore_models.py``).
Both are built here from their model modules, which import nothing of this one, so
the registry is a plain dict: no import on first use, no import circle. Adding a
dialect is a models module, one entry below and one in the config's Literal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from connector.cdp import models as asyncapi_models
from connector.cdp import sitecore_models
from connector.cdp.transport import DEFAULT_TRANSPORT, TransportName
from connector.errors import ConfigError

__all__ = ["ASYNCAPI", "SITECORE", "Dialect", "get_dialect", "other_dialects"]

_CUSTOM = "CUSTOM"


@dataclass(frozen=True)
class Dialect:
    """Payload models keyed by event type, and how events are sent by default.

    ``models`` holds one model per reserved type name plus ``"CUSTOM"``, the
    model for every other (custom) type name. ``transport`` is the dialect's default
    (``connector.cdp.transport.DEFAULT_TRANSPORT``); ``cdp.transport`` overrides it.
    """

    name: str
    models: Mapping[str, type[BaseModel]]
    _reserved: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if _CUSTOM not in self.models:
            raise ValueError(f"dialect {self.name!r} has no {_CUSTOM} model")
        object.__setattr__(self, "_reserved", frozenset(self.models) - {_CUSTOM})

    @property
    def transport(self) -> TransportName:
        """The transport this dialect travels on unless the config says otherwise."""
        return DEFAULT_TRANSPORT[self.name]

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

    def encoder(self, event_type: str) -> Callable[[Mapping[str, Any]], bytes]:
        """``dump(validate(payload))`` for payloads of ``event_type``, the model's own
        validator and serializer bound once (the mapper's hot path: no per-event model
        lookup, no ``model_validate`` wrapper). Raises ``pydantic.ValidationError`` for
        an invalid payload, pydantic's serialization error (a ValueError) for the rest."""
        model = self.model_for(event_type)
        validate = model.__pydantic_validator__.validate_python
        to_json = model.__pydantic_serializer__.to_json

        def encode(payload: Mapping[str, Any]) -> bytes:
            return to_json(validate(payload), exclude_none=True)

        return encode

    def validate_and_dump(self, payload: Mapping[str, Any]) -> bytes:
        """``dump(validate(payload))``: the body to post."""
        return self.dump(self.validate(payload))


def _models(module: Any) -> dict[str, type[BaseModel]]:
    return {
        "VIEW": module.ViewEvent,
        "IDENTITY": module.IdentityEvent,
        "ORDER_CHECKOUT": module.OrderCheckoutEvent,
        "ADD": module.AddEvent,
        "SEARCH": module.SearchEvent,
        _CUSTOM: module.CustomEvent,
    }


#: The AsyncAPI spec's models; travels on post-basic.
ASYNCAPI = Dialect(name="asyncapi", models=_models(asyncapi_models))
#: Sitecore's own data model 2.1; travels on post-events (POST /v1.2/events with
#: ``client_key`` in the body, no auth header), as ``@sitecore/engage`` does.
SITECORE = Dialect(name="sitecore", models=_models(sitecore_models))

_DIALECTS: dict[str, Dialect] = {d.name: d for d in (ASYNCAPI, SITECORE)}


def other_dialects(name: str) -> tuple[Dialect, ...]:
    """Every dialect there is but ``name``: what a mapping that fails for ``name`` is
    tried against, to say which one it was written for."""
    return tuple(d for d in _DIALECTS.values() if d.name != name)


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; ``ConfigError`` if there is none."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown CDP dialect {name!r} (known: {', '.join(sorted(_DIALECTS))})"
        ) from None
