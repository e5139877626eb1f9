"""Payload models of Sitecore's own wire format (data model 2.1, ``spec/SITECORE-OFFICIAL.md``).

Where it differs from the AsyncAPI spec (``models.py``), as doc.sitecore.com
describes the direct HTTP requests and Sitecore's SDKs send them:

- Base fields, all required: ``channel`` (13 values, no SERVER_SIDE), ``type``,
  ``language`` (uppercase ISO 639-1), ``currency`` (uppercase ISO 4217),
  ``page`` (a page *name*: free text, not a URI), ``pos``, ``browser_id``.
  No ``session_id``.
- IDENTITY identifies the guest only through ``identifiers`` (a non-empty list
  of ``{id, provider, expiry_date?}``); PII fields are optional extras. Dates
  (``dob``, ``expiry_date``) are ``YYYY-MM-DDThh:mm`` exactly, a real date and time.
- ORDER_CHECKOUT carries one nested ``order``; ADD one nested ``product``; both
  use camelCase keys (``referenceId``, ``orderedAt``) as on the wire.
- SEARCH (non-flight) carries ``product_name`` and ``product_type``.

What Sitecore's own SDKs add to the events they send (read from their built code,
``@sitecore/engage`` 1.4.3 and ``@sitecore-cloudsdk/events`` 0.6.1), accepted here:

- every event (Cloud SDK): ``requested_at``, ``new Date().toISOString()`` — UTC, ``Z``.
- VIEW: ``referrer`` (the referring page's URL, when it is another host) and the
  page URL's UTM parameters as top-level string fields (every query key that starts
  with ``utm_``, lowercased); ``ext.pageVariantId``. Accepted are the nine Google
  Analytics defines (``utm_id``, ``utm_source``, ``utm_medium``, ``utm_campaign``,
  ``utm_term``, ``utm_content``, ``utm_source_platform``, ``utm_creative_format``,
  ``utm_marketing_tactic``); a home-made ``utm_*`` name is refused like any unknown
  field, so that a mapping typo stays a start-up error.
- VIEW and custom events (Cloud SDK): ``sc_search``, ``{"data": {...}, "metadata":
  {"ut_api_version": "1.0"}}``, the search widget's data.
- ``client_key`` (both SDKs put it in the body): that is the transport's job here
  (``post-events`` splices it in), so a payload that carries one is refused.

Still refused although an SDK can produce it: Engage's ``event()`` spreads any
caller field onto a custom event, and the Cloud SDK's ``form()`` sends no ``page``
(through its edge proxy, which completes the event); the documented model has
neither, and the Stream API is what we talk to.

Choices the docs leave open, decided here:

- ``ext`` is the AsyncAPI dialect's flat object (≤ 50 attributes, camelCase
  alphanumeric names, scalar values). Nested input is refused, not flattened
  with ``_`` as the SDKs do: that would produce names the docs forbid. The
  rule "one value type per name per event type" spans events, so no single
  payload can break it; it is documented for mapping authors, not checked.
- ``cardType`` is required when ``paymentType`` is ``Card`` compared
  case-insensitively (the docs recommend title case, their examples mix cases).
- ``orderedAt`` is ISO 8601 text ending in ``Z`` or ``+00:00`` ("ISO 8601 Date/Time
  UTC"), sent exactly as given.
- Uppercase fields (``status``, product ``type``, custom event names) must not
  contain lowercase letters.
- Custom event names: uppercase, not a reserved name (``RESERVED_TYPES``; any
  ``SC_`` name too).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, model_validator

from connector.cdp.models import CURRENCY_PATTERN, ISO_639_1, RESERVED_TYPES, Email, Ext

__all__ = [
    "CHANNELS",
    "RESERVED_TYPES",
    "AddEvent",
    "BaseEvent",
    "CustomEvent",
    "Identifier",
    "IdentityEvent",
    "Order",
    "OrderCheckoutEvent",
    "OrderExtension",
    "OrderItem",
    "Product",
    "ScSearch",
    "SearchEvent",
    "ViewEvent",
]

Channel = Literal[
    "AIRPORT_KIOSK",
    "BRANCH",
    "CALL_CENTER",
    "EMAIL",
    "GDS",
    "KIOSK",
    "MOBILE_APP",
    "MOBILE_WEB",
    "SMS",
    "OFFLINE",
    "OTA",
    "OTHER",
    "WEB",
]
CHANNELS: tuple[str, ...] = get_args(Channel)


LANGUAGE_PATTERN = "^(?:" + ISO_639_1.upper() + ")$"
#: ``YYYY-MM-DDThh:mm``, nothing more (no seconds, no zone), as the docs and SDKs demand.
MINUTE_DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
UTC_DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|\+00:00)$"
UPPERCASE_PATTERN = r"^[^a-z]+$"


def _real_minute(value: str) -> str:
    # The pattern checks the shape; this refuses 2026-02-30T25:61. For that shape in ASCII
    # digits fromisoformat accepts what strptime("%Y-%m-%dT%H:%M") does, at 0.1 µs instead
    # of 5; other digits (the pattern's \d is Unicode) keep strptime's answer.
    if value.isascii():
        dt.datetime.fromisoformat(value)
    else:
        dt.datetime.strptime(value, "%Y-%m-%dT%H:%M")
    return value


def _utc(value: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO 8601 date and time") from None
    if parsed.utcoffset() != dt.timedelta(0):
        raise ValueError("must be UTC (offset +00:00 or Z)")
    return value


def _custom_name(value: str) -> str:
    if value.upper() in RESERVED_TYPES or value.upper().startswith("SC_"):
        raise ValueError(f"{value!r} is a reserved event type name and cannot be a custom event")
    return value


Language = Annotated[
    str, Field(pattern=LANGUAGE_PATTERN, description="uppercase ISO 639-1 code, e.g. EN")
]
Currency = Annotated[
    str, Field(pattern=CURRENCY_PATTERN, description="uppercase ISO 4217 code, e.g. EUR")
]
Text = Annotated[str, Field(min_length=1)]
Uppercase = Annotated[
    str,
    Field(min_length=1, pattern=UPPERCASE_PATTERN, description="uppercase (no lowercase letters)"),
]
MinuteDateTime = Annotated[
    str,
    Field(
        pattern=MINUTE_DATETIME_PATTERN,
        description="date and time to the minute, YYYY-MM-DDThh:mm, e.g. 2026-11-02T08:15 "
        '(transform: {strftime: "%Y-%m-%dT%H:%M"})',
    ),
    AfterValidator(_real_minute),
]
# Kept as the text given (the mapping's iso8601 transform writes ``...T...sssZ``) so the
# body says exactly what the record said; checked to be a real UTC date-time.
UtcDateTime = Annotated[
    str,
    Field(
        pattern=UTC_DATETIME_PATTERN,
        description="UTC date-time, ISO 8601 ending in Z (or +00:00), "
        "e.g. 2026-11-02T08:15:30.123Z",
    ),
    AfterValidator(_utc),
]
Quantity = Annotated[int, Field(ge=1)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Model(BaseModel):
    # strict: JSON Schema types, no coercion; forbid: a mapping typo is an error.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BaseEvent(_Model):
    """Fields every event carries (data model 2.1), plus the Cloud SDK's ``requested_at``."""

    channel: Channel
    type: StrictStr
    language: Language
    currency: Currency
    page: StrictStr
    pos: Text
    browser_id: Text
    ext: Ext | None = None
    requested_at: UtcDateTime | None = None


class SearchMetadata(_Model):
    """``sc_search.metadata``: the version of the search widget's data."""

    ut_api_version: Text


class ScSearch(_Model):
    """``sc_search``: what a search widget reported (the Cloud SDK's ``searchData``)."""

    data: dict[str, Any]
    metadata: SearchMetadata


class ViewEvent(BaseEvent):
    """VIEW: a page (by name) was viewed; where from (``referrer``, ``utm_*``) if known."""

    type: Literal["VIEW"]
    referrer: Text | None = None
    # The UTM parameters Google Analytics defines, the ones a page URL carries in practice.
    utm_id: StrictStr | None = None
    utm_source: StrictStr | None = None
    utm_medium: StrictStr | None = None
    utm_campaign: StrictStr | None = None
    utm_term: StrictStr | None = None
    utm_content: StrictStr | None = None
    utm_source_platform: StrictStr | None = None
    utm_creative_format: StrictStr | None = None
    utm_marketing_tactic: StrictStr | None = None
    sc_search: ScSearch | None = None


class Identifier(_Model):
    """One guest identifier from an identity system (``provider``)."""

    id: Text
    provider: Text
    expiry_date: MinuteDateTime | None = None


class IdentityEvent(BaseEvent):
    """IDENTITY: identifies the guest through ``identifiers``; PII is optional extra data."""

    type: Literal["IDENTITY"]
    identifiers: Annotated[list[Identifier], Field(min_length=1)]
    email: Email | None = None
    title: StrictStr | None = None
    firstname: StrictStr | None = None
    lastname: StrictStr | None = None
    gender: StrictStr | None = None
    dob: MinuteDateTime | None = None
    mobile: StrictStr | None = None
    phone: StrictStr | None = None
    street: list[StrictStr] | None = None
    city: StrictStr | None = None
    state: StrictStr | None = None
    country: (
        Annotated[
            str,
            Field(
                pattern=COUNTRY_PATTERN,
                description="uppercase ISO 3166-1 alpha-2 country code, e.g. DE",
            ),
        ]
        | None
    ) = None
    postal_code: StrictStr | None = None


class OrderExtension(BaseModel):
    """One entry of ``order.extensions`` / ``orderItems[].extensions``: ext/default + attributes."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    name: Literal["ext"] = "ext"
    key: Literal["default"] = "default"

    @model_validator(mode="after")
    def _flat_attributes(self) -> OrderExtension:
        extra: dict[str, Any] = self.__pydantic_extra__ or {}
        if len(extra) > 50:
            raise ValueError("at most 50 extension attributes")
        for name, value in extra.items():
            if not (name[:1].islower() and name.isascii() and name.isalnum()):
                raise ValueError(f"attribute name {name!r} is not alphanumeric camelCase")
            if type(value) not in (str, bool, int, float):
                raise ValueError(f"attribute {name!r}: value must be string, boolean or number")
        return self


class OrderItem(_Model):
    """One line of an order; every attribute is optional."""

    type: Uppercase | None = None
    referenceId: StrictStr | None = None
    orderedAt: UtcDateTime | None = None
    status: Uppercase | None = None
    currencyCode: Currency | None = None
    price: Price | None = None
    name: StrictStr | None = None
    productId: StrictStr | None = None
    quantity: Quantity | None = None
    originalPrice: Price | None = None
    originalCurrencyCode: Currency | None = None
    extensions: list[OrderExtension] | None = None


class Order(_Model):
    """The ``order`` of an ORDER_CHECKOUT."""

    referenceId: Text
    orderedAt: UtcDateTime
    status: Uppercase
    currencyCode: Currency
    price: Price
    paymentType: Text
    cardType: Text | None = None
    extensions: list[OrderExtension] | None = None
    orderItems: list[OrderItem] | None = None

    @model_validator(mode="after")
    def _card_type_for_cards(self) -> Order:
        if self.paymentType.lower() == "card" and self.cardType is None:
            raise ValueError("cardType is required when paymentType is Card")
        return self


class OrderCheckoutEvent(BaseEvent):
    """ORDER_CHECKOUT: a whole order in one event (the guest must be identified first)."""

    type: Literal["ORDER_CHECKOUT"]
    order: Order


class Product(_Model):
    """The ``product`` of an ADD event."""

    type: Uppercase
    item_id: Text
    name: Text
    productId: Text
    referenceId: Text
    orderedAt: UtcDateTime
    quantity: Quantity
    price: Price
    currency: Currency
    originalPrice: Price | None = None
    originalCurrencyCode: Currency | None = None


class AddEvent(BaseEvent):
    """ADD: a product added to the cart."""

    type: Literal["ADD"]
    product: Product


class SearchEvent(BaseEvent):
    """SEARCH (non-flight): what kind of product was searched for, by name and type."""

    type: Literal["SEARCH"]
    product_name: Text
    product_type: Text


class CustomEvent(BaseEvent):
    """Any uppercase, non-reserved event type: the base fields plus ``ext`` (and the
    Cloud SDK's ``sc_search``)."""

    sc_search: ScSearch | None = None

    type: Annotated[
        str,
        Field(
            min_length=1,
            pattern=UPPERCASE_PATTERN,
            description="uppercase (no lowercase letters), not a reserved type",
        ),
        AfterValidator(_custom_name),
    ]
