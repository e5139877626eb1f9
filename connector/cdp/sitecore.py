"""The ``sitecore`` dialect: Sitecore's own data model 2.1, sent the way its SDKs send it.

Models: ``connector.cdp.sitecore_models``. Default transport: ``post-events``
(POST ``/v1.2/events`` with ``client_key`` in the body, no auth header), as
``@sitecore/engage`` does; ``cdp.transport`` picks another (``transport.py``).
"""

from __future__ import annotations

from pydantic import BaseModel

from connector.cdp.dialect import Dialect, register_dialect
from connector.cdp.sitecore_models import (
    AddEvent,
    CustomEvent,
    IdentityEvent,
    OrderCheckoutEvent,
    SearchEvent,
    ViewEvent,
)

__all__ = ["SITECORE"]

_MODELS: dict[str, type[BaseModel]] = {
    "VIEW": ViewEvent,
    "IDENTITY": IdentityEvent,
    "ORDER_CHECKOUT": OrderCheckoutEvent,
    "ADD": AddEvent,
    "SEARCH": SearchEvent,
    "CUSTOM": CustomEvent,
}

SITECORE = register_dialect(
    Dialect(name="sitecore", models=_MODELS, path="/v1.2/events", transport="post-events")
)
