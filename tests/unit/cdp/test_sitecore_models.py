"""sitecore dialect: Sitecore's documented examples pass; every documented rule refuses,
naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connector.cdp import get_dialect
from connector.cdp.sitecore_models import CHANNELS

DIALECT = get_dialect("sitecore")
DOCS_FILE = Path(__file__).parents[1] / "fixtures" / "sitecore_doc_examples.json"
DOCS = json.loads(DOCS_FILE.read_text())
EXAMPLES: dict[str, dict[str, Any]] = {e["name"]: e["event"] for e in DOCS["examples"]}

BASE: dict[str, Any] = {
    "channel": "WEB",
    "language": "EN",
    "currency": "EUR",
    "page": "home page",
    "pos": "myretailsite/ireland",
    "browser_id": "a38b230c-11eb-4cf9-8d5d-274e9f344925",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_documented_examples_validate(name: str) -> None:
    event = EXAMPLES[name]
    body = json.loads(DIALECT.validate_and_dump(event))
    assert body["type"] == event["type"]
    assert body["browser_id"] == event["browser_id"]


def test_every_doc_example_names_its_source() -> None:
    for example in DOCS["examples"]:
        assert example["source"].startswith("https://doc.sitecore.com/")
        assert example["kind"] in ("verbatim", "assembled")


def _set(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()

# (example, field path to change, new value or _DELETE, field the error must name)
VIOLATIONS = [
    # base fields
    ("view-with-ext", "channel", "SERVER_SIDE", "channel"),
    ("view-with-ext", "channel", "web", "channel"),
    ("view-with-ext", "language", "en", "language"),
    ("view-with-ext", "language", "XX", "language"),
    ("view-with-ext", "currency", "eur", "currency"),
    ("view-with-ext", "page", _DELETE, "page"),
    ("view-with-ext", "pos", _DELETE, "pos"),
    ("view-with-ext", "pos", "", "pos"),
    ("view-with-ext", "browser_id", _DELETE, "browser_id"),
    ("view-with-ext", "session_id", "s-1", "session_id"),
    ("view-with-ext", "language", _DELETE, "language"),
    # ext: flat, camelCase alphanumeric names, scalar values, at most 50
    ("view-with-ext", "ext", {"tile_ref": 1}, "ext"),
    ("view-with-ext", "ext", {"TileRef": 1}, "ext"),
    ("view-with-ext", "ext", {"tile": {"ref": 1}}, "ext.tile"),
    ("view-with-ext", "ext", {"tiles": [1, 2]}, "ext.tiles"),
    ("view-with-ext", "ext", {f"a{i}": i for i in range(51)}, "ext"),
    # IDENTITY
    ("identity", "identifiers", _DELETE, "identifiers"),
    ("identity", "identifiers", [], "identifiers"),
    ("identity", "identifiers", [{"id": "1"}], "identifiers.0.provider"),
    ("identity", "identifiers", [{"provider": "CRM"}], "identifiers.0.id"),
    ("identity", "identifiers", [{"id": "", "provider": "CRM"}], "identifiers.0.id"),
    (
        "identity",
        "identifiers",
        [{"id": "1", "provider": "CRM", "expiry_date": "2025-04-15"}],
        "identifiers.0.expiry_date",
    ),
    ("identity", "dob", "1983-04-15", "dob"),
    ("identity", "dob", "1983-04-15T00:00:00", "dob"),
    ("identity", "dob", "1983-02-30T00:00", "dob"),
    ("identity", "email", "not-an-email", "email"),
    ("identity", "street", "Tara Street", "street"),
    ("identity", "country", "Ireland", "country"),
    ("identity", "date_of_birth", "1983-04-15", "date_of_birth"),
    # ORDER_CHECKOUT
    ("order-checkout", "order", _DELETE, "order"),
    ("order-checkout", "order.referenceId", _DELETE, "order.referenceId"),
    ("order-checkout", "order.orderedAt", _DELETE, "order.orderedAt"),
    ("order-checkout", "order.orderedAt", "2026-08-23T16:17:16+02:00", "order.orderedAt"),
    ("order-checkout", "order.status", _DELETE, "order.status"),
    ("order-checkout", "order.status", "purchased", "order.status"),
    ("order-checkout", "order.currencyCode", _DELETE, "order.currencyCode"),
    ("order-checkout", "order.price", _DELETE, "order.price"),
    ("order-checkout", "order.price", "200", "order.price"),
    ("order-checkout", "order.paymentType", _DELETE, "order.paymentType"),
    ("order-checkout", "order.cardType", _DELETE, "order"),
    ("order-checkout", "order.orderItems.0.quantity", 0, "order.orderItems.0.quantity"),
    ("order-checkout", "order.orderItems.0.currencyCode", "eur", "order.orderItems.0.currencyCode"),
    ("order-checkout", "order.extensions.0.name", "other", "order.extensions.0.name"),
    ("order-checkout", "order.extensions.0.nested", {"a": 1}, "order.extensions.0"),
    ("order-checkout", "reference_id", "X", "reference_id"),
    # ADD
    ("add", "product", _DELETE, "product"),
    ("add", "product.item_id", _DELETE, "product.item_id"),
    ("add", "product.productId", _DELETE, "product.productId"),
    ("add", "product.referenceId", _DELETE, "product.referenceId"),
    ("add", "product.orderedAt", _DELETE, "product.orderedAt"),
    ("add", "product.quantity", _DELETE, "product.quantity"),
    ("add", "product.price", _DELETE, "product.price"),
    ("add", "product.currency", _DELETE, "product.currency"),
    ("add", "product.type", "bet", "product.type"),
    ("add", "product.sku", "X", "product.sku"),
]


@pytest.mark.parametrize(("example", "path", "value", "field"), VIOLATIONS)
def test_each_documented_rule_refuses_naming_the_field(
    example: str, path: str, value: Any, field: str
) -> None:
    bad = _set(EXAMPLES[example], path, value)
    with pytest.raises(ValidationError) as info:
        DIALECT.validate(bad)
    locs = {".".join(str(p) for p in err["loc"]) for err in info.value.errors()}
    assert any(loc == field or loc.startswith(field + ".") for loc in locs), locs


def test_card_type_only_required_for_cards() -> None:
    order = _set(EXAMPLES["order-checkout"], "order.cardType", _DELETE)
    DIALECT.validate(_set(order, "order.paymentType", "PayPal"))
    with pytest.raises(ValidationError, match="cardType is required"):
        DIALECT.validate(_set(order, "order.paymentType", "card"))


def test_search_needs_product_name_and_type() -> None:
    good = {**BASE, "type": "SEARCH", "product_name": "running shoes", "product_type": "shoes"}
    DIALECT.validate(good)
    for field in ("product_name", "product_type"):
        with pytest.raises(ValidationError) as info:
            DIALECT.validate({k: v for k, v in good.items() if k != field})
        assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("name", ["WISHLIST_ADDED", "MYSITE:CLICKED_PROMO", "NEWSLETTER-OPENED"])
def test_custom_events_take_uppercase_names(name: str) -> None:
    DIALECT.validate({**BASE, "type": name, "ext": {"listName": "summer"}})


@pytest.mark.parametrize(
    "name", ["wishlist_added", "Wishlist", "CHECKOUT", "payment", "SC_SEARCH_WIDGET_VIEW", ""]
)
def test_custom_event_names_must_be_uppercase_and_not_reserved(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        DIALECT.validate({**BASE, "type": name})
    assert info.value.errors()[0]["loc"][0] == "type"


def test_custom_events_carry_only_base_fields_and_ext() -> None:
    with pytest.raises(ValidationError) as info:
        DIALECT.validate({**BASE, "type": "PROMO_CLICKED", "promo": "x"})
    assert info.value.errors()[0]["loc"] == ("promo",)


def test_all_thirteen_channels_are_accepted() -> None:
    assert len(set(CHANNELS)) == 13
    for channel in CHANNELS:
        DIALECT.validate({**BASE, "type": "VIEW", "channel": channel})


def test_dump_has_no_nulls_and_keeps_wire_names() -> None:
    event = _set(EXAMPLES["identity"], "title", None)
    body = json.loads(DIALECT.validate_and_dump(event))
    assert "title" not in body
    order = json.loads(DIALECT.validate_and_dump(EXAMPLES["order-checkout"]))["order"]
    assert order["referenceId"] == "B94TXY-1"
    assert order["extensions"] == [{"name": "ext", "key": "default", "refundable": True}]
    assert order["orderItems"][0]["extensions"][0]["phoneColor"] == "Obsidian"


def test_transport_defaults_per_dialect_and_keyed_transports_need_no_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.config import CdpSettings

    monkeypatch.delenv("CDP_API_TOKEN", raising=False)
    assert CdpSettings().effective_transport == "post-basic"
    sitecore = CdpSettings(dialect="sitecore", points_of_sale=["shop.example.com"])
    assert sitecore.effective_transport == "post-events"
    assert sitecore.api_token_if_needed() == ""
    keyed = CdpSettings(dialect="sitecore", transport="get-query", points_of_sale=["shop"])
    assert keyed.effective_transport == "get-query"
    with pytest.raises(Exception, match="api_token"):
        CdpSettings(transport="post-basic").api_token_if_needed()
