"""sitecore dialect: the events Sitecore's own SDKs send validate; the documented model's
rules still refuse.

The requests are reconstructed from the SDKs' built code (npm: ``@sitecore/engage``
1.4.3, ``esm/src/lib/events/*.mjs``; ``@sitecore-cloudsdk/events`` 0.6.1,
``dist/esm/src/lib/events/**.js``): ``mapBaseEventPayload()`` merged with each event's
``mapAttributes()`` as ``send()`` does, for a page ``https://shop.example/shoes
?utm_source=newsletter&utm_medium=email&utm_campaign=winter&utm_term=boots
&utm_content=hero&utm_id=42`` reached from ``https://search.example/?q=boots``.
``client_key`` (both SDKs put it in the body) is left out: our ``post-events``
transport splices it in, and the sandbox takes it out before validating, as here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from connector.cdp import get_dialect

DIALECT = get_dialect("sitecore")
REQUESTED_AT = "2026-12-01T09:12:00.000Z"  # new Date().toISOString()

# BaseEvent.mapBaseEventPayload (both SDKs; the Cloud SDK adds requested_at).
BASE: dict[str, Any] = {
    "browser_id": "a38b230c-11eb-4cf9-8d5d-274e9f344925",
    "channel": "WEB",
    "currency": "EUR",
    "language": "EN",
    "page": "shoes",
    "pos": "shop.example",
}
UTM = {
    "utm_source": "newsletter",
    "utm_medium": "email",
    "utm_campaign": "winter",
    "utm_term": "boots",
    "utm_content": "hero",
    "utm_id": "42",
}

SDK_EVENTS: dict[str, dict[str, Any]] = {
    # PageViewEvent.mapAttributes: type, utm_*, ext.pageVariantId, referrer.
    "engage page view": {
        **BASE, "type": "VIEW", **UTM, "ext": {"pageVariantId": "shoes_default"},
        "referrer": "https://search.example/?q=boots",
    },
    # Cloud SDK page view: the same plus requested_at and sc_search (searchData).
    "cloudsdk page view": {
        **BASE, "requested_at": REQUESTED_AT, "type": "VIEW", **UTM,
        "ext": {"pageVariantId": "shoes_default", "abTest": "b"},
        "referrer": "https://search.example/?q=boots",
        "sc_search": {"data": {"widgetId": "w-1", "entity": "product", "keyword": "boots"},
                      "metadata": {"ut_api_version": "1.0"}},
    },
    # includeUTMParameters false and no referrer (a later page view in the session).
    "cloudsdk page view, bare": {**BASE, "requested_at": REQUESTED_AT, "type": "VIEW"},
    # IdentityEvent.mapAttributes (undefined fields vanish in JSON.stringify).
    "engage identity": {
        **BASE, "type": "IDENTITY", "email": "ana@example.com", "firstname": "Ana",
        "lastname": "Lopez", "identifiers": [
            {"id": "ana@example.com", "provider": "email", "expiry_date": "2027-12-01T10:00"}
        ],
    },
    "cloudsdk identity": {
        **BASE, "requested_at": REQUESTED_AT, "type": "IDENTITY", "city": "Cork",
        "country": "IE", "dob": "1990-05-17T00:00", "gender": "female", "mobile": "+353 1",
        "phone": "+353 2", "postal_code": "T12", "state": "Munster", "street": ["1 Main St"],
        "title": "Ms", "identifiers": [{"id": "c-1", "provider": "crm"}],
        "ext": {"loyaltyTier": "gold"},
    },
    # event("ADD", {...}) → CustomEvent: type plus the caller's fields spread on top.
    "engage add": {
        **BASE, "type": "ADD", "product": {
            "type": "SHOES", "item_id": "sku-1", "name": "Boot", "productId": "p-1",
            "referenceId": "r-1", "orderedAt": "2026-12-01T09:12:00.000Z", "quantity": 1,
            "price": 120.0, "currency": "EUR",
        },
    },
    "cloudsdk order": {
        **BASE, "requested_at": REQUESTED_AT, "type": "ORDER_CHECKOUT", "order": {
            "referenceId": "o-1", "orderedAt": "2026-12-01T09:12:00Z", "status": "PURCHASED",
            "currencyCode": "EUR", "price": 120.0, "paymentType": "Card", "cardType": "VISA",
            "orderItems": [{"type": "SHOES", "referenceId": "r-1", "quantity": 1,
                            "price": 120.0, "currencyCode": "EUR", "productId": "p-1"}],
        },
    },
    "engage search": {**BASE, "type": "SEARCH", "product_name": "boots",
                      "product_type": "SHOES"},
    "cloudsdk search": {**BASE, "requested_at": REQUESTED_AT, "type": "SEARCH",
                        "product_name": "boots", "product_type": "SHOES"},
    # A custom event with extension data (flat, camelCase) and searchData.
    "cloudsdk custom": {
        **BASE, "requested_at": REQUESTED_AT, "type": "WISHLIST_ADD",
        "ext": {"productId": "p-1", "listSize": 3},
        "sc_search": {"data": {"keyword": "boots"}, "metadata": {"ut_api_version": "1.0"}},
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SDK_EVENTS))
def test_what_the_sdks_send_validates_and_is_sent_unchanged(name: str) -> None:
    event = SDK_EVENTS[name]
    assert json.loads(DIALECT.validate_and_dump(event)) == event


def test_a_mapping_can_set_referrer_and_utm_fields() -> None:
    from connector.mapping.targets import model_fields

    fields = model_fields(DIALECT.model_for("VIEW"))
    assert {"referrer", "requested_at", *UTM} <= set(fields)


def _refused(event: dict[str, Any], field: str) -> None:
    """Refused, and the error names ``field`` (or a field inside it)."""
    with pytest.raises(ValidationError) as info:
        DIALECT.validate(event)
    locs = {".".join(str(p) for p in err["loc"]) for err in info.value.errors()}
    assert any(loc == field or loc.startswith(field + ".") for loc in locs), locs


VIEW = SDK_EVENTS["engage page view"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # "Send additional event data": ext names are alphanumeric camelCase.
        ({"ext": {"campaign_name": "x"}}, "ext"),
        # The SDKs' flattening of nested extension data makes names the docs forbid.
        ({"ext": {"order_amount": 1}}, "ext"),
        ({"ext": {"order": {"amount": 1}}}, "ext"),
        # Unknown fields stay refused, home-made utm_* names and the key included.
        ({"campaign": "winter"}, "campaign"),
        ({"session_id": "s-1"}, "session_id"),
        ({"client_key": "k"}, "client_key"),
        ({"utm_Source": "x"}, "utm_Source"),
        ({"utm_made_up": "x"}, "utm_made_up"),
        ({"utm_id": 42}, "utm_id"),
        ({"utm_source": 1}, "utm_source"),
        ({"referrer": ""}, "referrer"),
        ({"requested_at": "2026-12-01T10:12:00+01:00"}, "requested_at"),
        ({"requested_at": "yesterday"}, "requested_at"),
        ({"sc_search": {"data": {}}}, "sc_search"),
    ],
)
def test_documented_violations_on_a_page_view_are_refused(
    change: dict[str, Any], field: str
) -> None:
    _refused({**VIEW, **change}, field)


@pytest.mark.parametrize("name", ["engage identity", "engage add", "engage search"])
def test_view_only_fields_stay_refused_on_other_types(name: str) -> None:
    _refused({**SDK_EVENTS[name], "referrer": "https://x.example/"}, "referrer")
    _refused({**SDK_EVENTS[name], "utm_source": "n"}, "utm_source")


def test_a_custom_event_still_takes_only_the_base_fields_ext_and_sc_search() -> None:
    custom = SDK_EVENTS["cloudsdk custom"]
    _refused({**custom, "productId": "p-1"}, "productId")  # Engage would spread it; docs: no
    _refused({k: v for k, v in custom.items() if k != "page"}, "page")  # form(): no page
