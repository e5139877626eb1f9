"""asyncapi models: spec examples pass, each constraint refuses, output is spec-shaped."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from connector.cdp import get_dialect
from connector.cdp.asyncapi import EVENT_ADAPTER
from connector.cdp.models import (
    RESERVED_TYPES,
    CustomEvent,
    IdentityEvent,
    OrderCheckoutEvent,
    ViewEvent,
)
from connector.errors import ConfigError

# A copy of the AsyncAPI document the models implement, so the suite needs nothing
# outside the repository.
SPEC = Path(__file__).parents[1] / "fixtures" / "cdp-stream-api.asyncapi.yaml"
DIALECT = get_dialect("asyncapi")

SCHEMA_BY_TYPE = {
    "VIEW": "ViewEventPayload",
    "IDENTITY": "IdentityEventPayload",
    "ORDER_CHECKOUT": "OrderCheckoutEventPayload",
    "ADD": "AddEventPayload",
    "SEARCH": "SearchEventPayload",
}

BASE: dict[str, Any] = {
    "channel": "WEB",
    "browser_id": "56860bff-94ba-4d84-aa37-2b5a83d5411b",
    "session_id": "s-1",
    "pos": "shop.example.com",
    "currency": "EUR",
}
FULL_BASE: dict[str, Any] = {
    **BASE,
    "language": "EN",
    "page": "https://shop.example.com/p/sku-1?x=1&y=%20z#top",
    "ext": {"pageType": "product", "loggedIn": True, "visits": 3, "score": 0.5},
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "view-minimal": {**BASE, "type": "VIEW"},
    "view-full": {**FULL_BASE, "type": "VIEW", "channel": "MOBILE_WEB"},
    "identity-minimal": {**BASE, "type": "IDENTITY", "email": "jane@example.com"},
    "identity-full": {
        **FULL_BASE,
        "type": "IDENTITY",
        "channel": "SERVER_SIDE",
        "email": "jane.o'neil+cdp@mail.example.co.uk",
        "firstname": "Jane",
        "lastname": "O'Neil",
        "date_of_birth": "1990-04-01",
        "gender": "Female",
        "phone": "+44 20 7946 0000",
    },
    "order-minimal": {**BASE, "type": "ORDER_CHECKOUT", "reference_id": "O-1", "total_price": 0},
    "order-full": {
        **FULL_BASE,
        "type": "ORDER_CHECKOUT",
        "channel": "MOBILE_APP",
        "reference_id": "O-2",
        "status": "CANCELED",
        "total_price": 119.8,
        "payment_type": "GIFT_CARD",
        "ordered_at": "2026-11-26T10:00:00.123+01:00",
        "items": [
            {"sku": "A", "quantity": 1, "price": 59.9, "name": "Shoe", "category": "shoes"},
            {"sku": "B", "quantity": 2, "price": 29.95},
        ],
    },
    "add-minimal": {**BASE, "type": "ADD", "product": {"sku": "A"}},
    "add-full": {
        **FULL_BASE,
        "type": "ADD",
        "product": {"sku": "A", "name": "Shoe", "price": 59.9, "category": "shoes"},
    },
    "search-minimal": {**BASE, "type": "SEARCH", "search_term": ""},
    "search-full": {**FULL_BASE, "type": "SEARCH", "search_term": "red shoes", "num_results": 0},
    "custom-minimal": {**BASE, "type": "X"},
    "custom-full": {**FULL_BASE, "type": "ADD_TO_WISHLIST"},
    "custom-50-chars": {**BASE, "type": "W" * 50},
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return dict(yaml.safe_load(SPEC.read_text()))


def spec_errors(spec: dict[str, Any], body: bytes) -> list[str]:
    """Errors of ``body`` against the spec's schema for its type (jsonschema, formats on)."""
    payload = json.loads(body)
    name = SCHEMA_BY_TYPE.get(payload["type"], "CustomEventPayload")
    schema = {**spec, "$ref": f"#/components/schemas/{name}"}
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [e.message for e in validator.iter_errors(payload)]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_spec_example_validates_and_dumps_spec_valid_json(spec: dict[str, Any], name: str) -> None:
    payload = EXAMPLES[name]
    body = DIALECT.validate_and_dump(payload)
    assert spec_errors(spec, body) == []
    sent = json.loads(body)
    if "ordered_at" in payload:  # date-times are re-rendered (same instant, RFC 3339)
        parse = dt.datetime.fromisoformat
        assert parse(sent.pop("ordered_at")) == parse(payload["ordered_at"])
        payload = _without(payload, "ordered_at")
    assert sent == payload  # sent as given: nothing added, nothing dropped


def test_dump_is_compact_and_leaves_out_unset_and_none_fields() -> None:
    body = DIALECT.validate_and_dump({**BASE, "type": "IDENTITY", "email": "a@b.io", "phone": None})
    assert b" " not in body
    assert b"null" not in body
    assert set(json.loads(body)) == {*BASE, "type", "email"}


def test_python_values_from_avro_dump_as_spec_types(spec: dict[str, Any]) -> None:
    """Decimal, date and aware datetime (what the Avro decoder yields) become JSON types."""
    order = {
        **BASE,
        "type": "ORDER_CHECKOUT",
        "reference_id": "O",
        "total_price": Decimal("12.30"),
        "ordered_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "items": [{"sku": "A", "quantity": 1, "price": Decimal("12.30")}],
    }
    body = DIALECT.validate_and_dump(order)
    assert json.loads(body)["total_price"] == 12.3
    assert json.loads(body)["ordered_at"] == "2026-01-02T03:04:05Z"
    assert spec_errors(spec, body) == []
    identity = {**BASE, "type": "IDENTITY", "email": "a@b.io", "date_of_birth": dt.date(1990, 1, 2)}
    assert json.loads(DIALECT.validate_and_dump(identity))["date_of_birth"] == "1990-01-02"


def _order(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["order-full"], **changes}


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


def _item(**changes: Any) -> dict[str, Any]:
    return _order(items=[{"sku": "A", "quantity": 1, "price": 1.0, **changes}])


VIEW = EXAMPLES["view-full"]
IDENTITY = EXAMPLES["identity-full"]
ADD = EXAMPLES["add-full"]
SEARCH = EXAMPLES["search-full"]
CUSTOM = EXAMPLES["custom-full"]

# (payload, the field the error must name)
VIOLATIONS: dict[str, tuple[dict[str, Any], str]] = {
    **{f"missing-{f}": (_without(VIEW, f), f) for f in BASE},
    "custom-missing-type": (_without(CUSTOM, "type"), "type"),
    "channel-not-in-enum": ({**VIEW, "channel": "EMAIL"}, "channel"),
    "channel-lowercase": ({**VIEW, "channel": "web"}, "channel"),
    "currency-lowercase": ({**VIEW, "currency": "eur"}, "currency"),
    "currency-four-letters": ({**VIEW, "currency": "EURO"}, "currency"),
    "currency-number": ({**VIEW, "currency": 978}, "currency"),
    "language-not-iso-639-1": ({**VIEW, "language": "XX"}, "language"),
    "language-word": ({**VIEW, "language": "english"}, "language"),
    "page-not-uri": ({**VIEW, "page": "home page"}, "page"),
    "page-relative": ({**VIEW, "page": "/products/1"}, "page"),
    "page-space": ({**VIEW, "page": "https://x.io/a b"}, "page"),
    "browser-id-number": ({**VIEW, "browser_id": 123}, "browser_id"),
    "unknown-field": ({**VIEW, "colour": "red"}, "colour"),
    "null-required": ({**VIEW, "pos": None}, "pos"),
    "identity-missing-email": (_without(IDENTITY, "email"), "email"),
    "identity-email-no-at": ({**IDENTITY, "email": "jane.example.com"}, "email"),
    "identity-email-no-domain-dot": ({**IDENTITY, "email": "jane@localhost"}, "email"),
    "identity-email-space": ({**IDENTITY, "email": "jane doe@example.com"}, "email"),
    "identity-dob-format": ({**IDENTITY, "date_of_birth": "01/04/1990"}, "date_of_birth"),
    "identity-dob-impossible": ({**IDENTITY, "date_of_birth": "1990-02-30"}, "date_of_birth"),
    "identity-gender-case": ({**IDENTITY, "gender": "female"}, "gender"),
    "identity-firstname-number": ({**IDENTITY, "firstname": 5}, "firstname"),
    "order-missing-reference": (_without(_order(), "reference_id"), "reference_id"),
    "order-missing-total": (_without(_order(), "total_price"), "total_price"),
    "order-total-string": (_order(total_price="12.5"), "total_price"),
    "order-total-bool": (_order(total_price=True), "total_price"),
    "order-total-nan": (_order(total_price=float("nan")), "total_price"),
    "order-status": (_order(status="CANCELLED"), "status"),
    "order-payment-type": (_order(payment_type="CARD"), "payment_type"),
    "order-ordered-at-naive": (_order(ordered_at="2026-11-26T10:00:00"), "ordered_at"),
    "order-ordered-at-date": (_order(ordered_at="26 Nov 2026"), "ordered_at"),
    "order-items-not-list": (_order(items={"sku": "A"}), "items"),
    "item-quantity-zero": (_item(quantity=0), "items.0.quantity"),
    "item-quantity-float": (_item(quantity=1.5), "items.0.quantity"),
    "item-quantity-bool": (_item(quantity=True), "items.0.quantity"),
    "item-missing-sku": (_order(items=[{"quantity": 1, "price": 1.0}]), "items.0.sku"),
    "item-missing-price": (_order(items=[{"sku": "A", "quantity": 1}]), "items.0.price"),
    "item-unknown-field": (_item(colour="red"), "items.0.colour"),
    "add-missing-product": (_without(ADD, "product"), "product"),
    "add-product-missing-sku": ({**ADD, "product": {"name": "x"}}, "product.sku"),
    "add-product-price-string": ({**ADD, "product": {"sku": "A", "price": "1"}}, "product.price"),
    "search-missing-term": (_without(SEARCH, "search_term"), "search_term"),
    "search-num-results-negative": ({**SEARCH, "num_results": -1}, "num_results"),
    "search-num-results-float": ({**SEARCH, "num_results": 2.0}, "num_results"),
    "custom-type-empty": ({**CUSTOM, "type": ""}, "type"),
    "custom-type-51-chars": ({**CUSTOM, "type": "W" * 51}, "type"),
    "custom-type-reserved-lowercase": ({**CUSTOM, "type": "view"}, "type"),
    "custom-type-reserved-sc-prefix": ({**CUSTOM, "type": "SC_THING"}, "type"),
    "custom-type-not-string": ({**CUSTOM, "type": 7}, "type"),
    "ext-key-snake-case": ({**VIEW, "ext": {"page_type": "x"}}, "ext.page_type"),
    "ext-key-capital": ({**VIEW, "ext": {"PageType": "x"}}, "ext.PageType"),
    "ext-key-digit-first": ({**VIEW, "ext": {"1st": "x"}}, "ext.1st"),
    "ext-key-dash": ({**VIEW, "ext": {"page-type": "x"}}, "ext.page-type"),
    "ext-nested-object": ({**VIEW, "ext": {"a": {"b": 1}}}, "ext.a"),
    "ext-list-value": ({**VIEW, "ext": {"a": [1]}}, "ext.a"),
    "ext-null-value": ({**VIEW, "ext": {"a": None}}, "ext.a"),
    "ext-nan-value": ({**VIEW, "ext": {"a": float("inf")}}, "ext.a"),
    "ext-51-attributes": ({**VIEW, "ext": {f"a{i}": i for i in range(51)}}, "ext"),
    "ext-not-object": ({**VIEW, "ext": "x"}, "ext"),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_violation_is_rejected_naming_the_field(name: str) -> None:
    payload, field = VIOLATIONS[name]
    with pytest.raises(ValidationError) as info:
        DIALECT.validate(payload)
    fields = {".".join(str(p) for p in e["loc"] if p != "[key]") for e in info.value.errors()}
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert field.split(".")[-1] in str(info.value)


@pytest.mark.parametrize("reserved", sorted(RESERVED_TYPES))
def test_reserved_names_are_not_custom_types(reserved: str) -> None:
    with pytest.raises(ValidationError, match="reserved"):
        CustomEvent.model_validate({**BASE, "type": reserved})


def test_typed_models_require_their_const_type() -> None:
    with pytest.raises(ValidationError, match="type"):
        ViewEvent.model_validate({**BASE, "type": "ADD"})
    with pytest.raises(ValidationError, match="type"):
        IdentityEvent.model_validate({**EXAMPLES["identity-minimal"], "type": "VIEW"})


def test_ext_with_exactly_50_attributes_is_accepted() -> None:
    DIALECT.validate({**VIEW, "ext": {f"a{i}": i for i in range(50)}})


def test_ext_boolean_stays_boolean_and_integer_stays_integer() -> None:
    body = DIALECT.validate_and_dump({**VIEW, "ext": {"a": True, "b": 1, "c": 1.5, "d": "1"}})
    assert json.loads(body)["ext"] == {"a": True, "b": 1, "c": 1.5, "d": "1"}


def test_dialect_dispatches_on_type() -> None:
    assert DIALECT.model_for("ORDER_CHECKOUT") is OrderCheckoutEvent
    assert DIALECT.model_for("SOMETHING_ELSE") is CustomEvent
    assert type(DIALECT.validate(EXAMPLES["custom-full"])) is CustomEvent
    assert type(DIALECT.validate(EXAMPLES["view-full"])) is ViewEvent


@pytest.mark.parametrize("payload", [[], "VIEW", None, {**BASE, "type": ["VIEW"]}])
def test_dialect_refuses_non_objects_and_odd_types(payload: Any) -> None:
    with pytest.raises(ValidationError):
        DIALECT.validate(payload)


def test_union_adapter_discriminates_like_the_dialect() -> None:
    assert type(EVENT_ADAPTER.validate_python(EXAMPLES["search-full"])).__name__ == "SearchEvent"
    assert type(EVENT_ADAPTER.validate_python(EXAMPLES["custom-full"])) is CustomEvent
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python({**BASE, "type": "VIEW", "email": "x@y.io"})


def test_unknown_dialect_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no-such"):
        get_dialect("no-such")


@pytest.mark.parametrize("value", [1000, 1.5, True])
def test_a_number_is_never_a_date_time_or_a_date(value: object) -> None:
    order = {**BASE, "type": "ORDER_CHECKOUT", "reference_id": "O", "total_price": 1}
    with pytest.raises(ValidationError, match="ordered_at"):
        DIALECT.validate({**order, "ordered_at": value})
    identity = {**BASE, "type": "IDENTITY", "email": "a@b.io"}
    with pytest.raises(ValidationError, match="date_of_birth"):
        DIALECT.validate({**identity, "date_of_birth": value})
