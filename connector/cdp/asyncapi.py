"""The ``asyncapi`` dialect's ``oneOf`` as one pydantic type (``EVENT_ADAPTER``).

The dialect itself (``ASYNCAPI``) is built in ``connector.cdp.dialect``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Tag, TypeAdapter

from connector.cdp.dialect import ASYNCAPI
from connector.cdp.models import (
    AddEvent,
    CustomEvent,
    IdentityEvent,
    OrderCheckoutEvent,
    SearchEvent,
    ViewEvent,
)

__all__ = ["ASYNCAPI", "EVENT_ADAPTER", "AnyEvent"]

_MODELS: dict[str, type[BaseModel]] = {
    "VIEW": ViewEvent,
    "IDENTITY": IdentityEvent,
    "ORDER_CHECKOUT": OrderCheckoutEvent,
    "ADD": AddEvent,
    "SEARCH": SearchEvent,
}


def _tag(value: Any) -> str:
    event_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return event_type if isinstance(event_type, str) and event_type in _MODELS else "CUSTOM"


#: The spec's ``oneOf`` as one type, discriminated on ``type`` (any other name → custom).
AnyEvent = Annotated[
    Annotated[ViewEvent, Tag("VIEW")]
    | Annotated[IdentityEvent, Tag("IDENTITY")]
    | Annotated[OrderCheckoutEvent, Tag("ORDER_CHECKOUT")]
    | Annotated[AddEvent, Tag("ADD")]
    | Annotated[SearchEvent, Tag("SEARCH")]
    | Annotated[CustomEvent, Tag("CUSTOM")],
    Discriminator(_tag),
]
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)
