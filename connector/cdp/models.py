"""Payload models of the AsyncAPI Stream API spec (``docs/spec/cdp-stream-api.asyncapi.yaml``).

One pydantic model per message: VIEW, IDENTITY, ORDER_CHECKOUT, ADD, SEARCH and
custom events. Every constraint of the spec is a declarative constraint here
(pattern, enum, bound), so validation runs in pydantic-core without Python
callbacks on the hot path. Choices the spec leaves open, decided here:

- Types are strict, as in JSON Schema: a string field takes only ``str``, an
  integer only ``int`` (not ``bool``, not ``2.0``), a number ``int``/``float``
  (``Decimal`` too, dumped as a JSON number; NaN and infinities are refused).
  ``date`` and ``date-time`` fields take ISO strings or ``date``/``datetime``
  objects, never numbers; date-times must carry a UTC offset (RFC 3339).
- ``None`` on an optional field means "absent": it is never sent (no nulls).
- ``email`` is checked by a regex (see ``EMAIL_PATTERN``), not email-validator:
  it is fast and strict enough for a transport check; the CDP owns identity.
- ``page`` (format uri) must be an absolute RFC 3986 URI made of allowed
  characters (non-ASCII must be percent-encoded); it is sent as given, not
  normalised.
- ``language`` is a two-letter ISO 639-1 code from the real code list, in
  either case (the spec's example is ``EN``).
- ``ext`` is one flat object: at most 50 keys, keys alphanumeric camelCase
  (``^[a-z][a-zA-Z0-9]*$``), values string / boolean / integer / number.
  Nested objects and lists are refused, not flattened: flattening (as
  Sitecore's SDKs do, with ``_``) would produce non-camelCase names.
- Custom ``type``: 1..50 characters, not a reserved name (``RESERVED_TYPES``,
  compared case-insensitively, plus any name starting with ``SC_``).
- Unknown fields are refused (``extra="forbid"``) so a mapping typo fails loudly.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
)

__all__ = [
    "CURRENCY_PATTERN",
    "EMAIL_PATTERN",
    "ISO_639_1",
    "RESERVED_TYPES",
    "AddEvent",
    "BaseEvent",
    "CustomEvent",
    "Email",
    "Ext",
    "IdentityEvent",
    "OrderCheckoutEvent",
    "OrderItem",
    "ProductReference",
    "SearchEvent",
    "ViewEvent",
]

#: Type names a custom event may not use: the spec's five messages plus the
#: other standard and internal events Sitecore's docs reserve. Any name that
#: starts with ``SC_`` is reserved too. Compared case-insensitively.
RESERVED_TYPES: frozenset[str] = frozenset(
    {
        "VIEW",
        "IDENTITY",
        "ORDER_CHECKOUT",
        "ADD",
        "SEARCH",
        "ADD_CONSUMERS",
        "ADD_CONTACTS",
        "ADD_PRODUCT",
        "CALCULATOR",
        "CAMPAIGN_TRACKING",
        "CHECKOUT",
        "CLEAR_CART",
        "CONFIRM",
        "FEEDBACK",
        "INTERACTION",
        "PAYMENT",
        "SUBSCRIPTION",
        "TRACKING",
    }
)

#: local@domain.tld: RFC 5322 "atext" local part (dot-separated), DNS labels.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
#: scheme ":" then only RFC 3986 unreserved / reserved characters or %XX escapes.
URI_PATTERN = (
    r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$"
)
CURRENCY_PATTERN = r"^[A-Z]{3}$"
EXT_KEY_PATTERN = r"^[a-z][a-zA-Z0-9]*$"
EXT_MAX_ATTRIBUTES = 50

# ISO 639-1: every two-letter code.
ISO_639_1 = (
    "aa|ab|ae|af|ak|am|an|ar|as|av|ay|az|ba|be|bg|bi|bm|bn|bo|br|bs|ca|ce|ch|co|cr|cs|cu|"
    "cv|cy|da|de|dv|dz|ee|el|en|eo|es|et|eu|fa|ff|fi|fj|fo|fr|fy|ga|gd|gl|gn|gu|gv|ha|he|"
    "hi|ho|hr|ht|hu|hy|hz|ia|id|ie|ig|ii|ik|io|is|it|iu|ja|jv|ka|kg|ki|kj|kk|kl|km|kn|ko|"
    "kr|ks|ku|kv|kw|ky|la|lb|lg|li|ln|lo|lt|lu|lv|mg|mh|mi|mk|ml|mn|mr|ms|mt|my|na|nb|nd|"
    "ne|ng|nl|nn|no|nr|nv|ny|oc|oj|om|or|os|pa|pi|pl|ps|pt|qu|rm|rn|ro|ru|rw|sa|sc|sd|se|"
    "sg|si|sk|sl|sm|sn|so|sq|sr|ss|st|su|sv|sw|ta|te|tg|th|ti|tk|tl|tn|to|tr|ts|tt|tw|ty|"
    "ug|uk|ur|uz|ve|vi|vo|wa|wo|xh|yi|yo|za|zh|zu"
)
LANGUAGE_PATTERN = "^(?i:" + ISO_639_1 + ")$"


def _not_reserved(value: str) -> str:
    upper = value.upper()
    if upper in RESERVED_TYPES or upper.startswith("SC_"):
        raise ValueError(f"{value!r} is a reserved event type name and cannot be a custom event")
    return value


# Strict float still takes int and Decimal (Avro decimals) and holds a float, so every
# number dumps as a JSON number; a ``float | Decimal`` union would dump Decimals as strings.
Number = Annotated[float, Field(allow_inf_nan=False)]
Currency = Annotated[
    str, Field(pattern=CURRENCY_PATTERN, description="uppercase ISO 4217 code, e.g. EUR")
]
Language = Annotated[
    str, Field(pattern=LANGUAGE_PATTERN, description="ISO 639-1 code (either case), e.g. EN")
]
Uri = Annotated[
    str,
    Field(
        pattern=URI_PATTERN,
        description="absolute URI (RFC 3986), e.g. https://shop.example/p/1 "
        "(non-ASCII characters %-encoded)",
    ),
]
Email = Annotated[
    str, Field(pattern=EMAIL_PATTERN, description="email address, e.g. ada@example.com")
]
ExtKey = Annotated[
    str,
    Field(
        pattern=EXT_KEY_PATTERN,
        description="camelCase (a lowercase letter, then letters and digits), e.g. pageType",
    ),
]
ExtValue = bool | int | Annotated[float, Field(allow_inf_nan=False)] | str
Ext = Annotated[dict[ExtKey, ExtValue], Field(max_length=EXT_MAX_ATTRIBUTES)]


def _text_or_temporal(value: object) -> object:
    # Lax mode parses ISO text, but would also turn 1000 into 1970-01-01T00:16:40Z:
    # only text and date/datetime objects are dates here, as JSON Schema says.
    if isinstance(value, str | dt.date):
        return value
    raise ValueError(f"a date or date-time is ISO 8601 text, not {type(value).__name__}")


Date = Annotated[dt.date, BeforeValidator(_text_or_temporal), Field(strict=False)]
DateTime = Annotated[AwareDatetime, BeforeValidator(_text_or_temporal), Field(strict=False)]
Channel = Literal["WEB", "MOBILE_WEB", "MOBILE_APP", "SERVER_SIDE"]


class _Model(BaseModel):
    # strict: JSON Schema types, no coercion; forbid: a mapping typo is an error.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BaseEvent(_Model):
    """Fields every event carries (``BaseEventPayload``)."""

    channel: Channel
    type: StrictStr
    browser_id: StrictStr
    session_id: StrictStr
    pos: StrictStr
    currency: Currency
    language: Language | None = None
    page: Uri | None = None
    ext: Ext | None = None


class ViewEvent(BaseEvent):
    """VIEW: a page view."""

    type: Literal["VIEW"]


class IdentityEvent(BaseEvent):
    """IDENTITY: links the guest to an email address and profile data."""

    type: Literal["IDENTITY"]
    email: Email
    firstname: StrictStr | None = None
    lastname: StrictStr | None = None
    date_of_birth: Date | None = None
    gender: Literal["Male", "Female", "Other", "Unknown"] | None = None
    phone: StrictStr | None = None


class OrderItem(_Model):
    """One line of an ORDER_CHECKOUT."""

    sku: StrictStr
    name: StrictStr | None = None
    quantity: Annotated[int, Field(ge=1)]
    price: Number
    category: StrictStr | None = None


class OrderCheckoutEvent(BaseEvent):
    """ORDER_CHECKOUT: a completed purchase."""

    type: Literal["ORDER_CHECKOUT"]
    reference_id: StrictStr
    status: Literal["CONFIRMED", "PENDING", "CANCELED"] | None = None
    total_price: Number
    payment_type: Literal["CREDIT_CARD", "DEBIT_CARD", "PAYPAL", "GIFT_CARD", "OTHER"] | None = None
    ordered_at: DateTime | None = None
    items: list[OrderItem] | None = None


class ProductReference(_Model):
    """The product of an ADD event."""

    sku: StrictStr
    name: StrictStr | None = None
    price: Number | None = None
    category: StrictStr | None = None


class AddEvent(BaseEvent):
    """ADD: a product added to the cart."""

    type: Literal["ADD"]
    product: ProductReference


class SearchEvent(BaseEvent):
    """SEARCH: a search query."""

    type: Literal["SEARCH"]
    search_term: StrictStr
    num_results: Annotated[int, Field(ge=0)] | None = None


class CustomEvent(BaseEvent):
    """Any application-defined event type that is not a reserved name."""

    type: Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_not_reserved)]
