"""Mapping rules against the sitecore dialect: the sample mapping covers every record kind;
a rule that cannot produce a valid sitecore event is a start-up error naming where."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from connector.cdp import get_dialect
from connector.errors import ConfigError
from connector.mapping import compile_mapping, compile_text
from connector.mapping.fields import BROWSER_ID_PLACEHOLDER
from connector.sample_clickstream import sample_records

REPO = Path(__file__).resolve().parents[3]
SITECORE_MAPPING = REPO / "config" / "mappings.sitecore.yaml"
DIALECT = get_dialect("sitecore")


def test_sample_mapping_maps_every_record_kind_to_valid_sitecore_events() -> None:
    mapper = compile_mapping(SITECORE_MAPPING, DIALECT)
    assert mapper.uses_browser_ids
    kinds: Counter[str] = Counter()
    for record in sample_records(600, guests=40, seed=5):
        result = mapper.map(record, "clickstream")
        types = [e.event_type for e in result.events]
        kinds[record["event_type"]] += 1
        if record["event_type"] == "ORDER_COMPLETED":
            assert types == ["IDENTITY", "ORDER_CHECKOUT"]
        for event in result.events:
            body = json.loads(event.body)
            DIALECT.validate(body)  # exactly what is posted, once the id is filled in
            assert body["browser_id"] == BROWSER_ID_PLACEHOLDER + record["anonymous_id"]
            assert event.guest_key == record["anonymous_id"]
            assert "session_id" not in body
    assert set(kinds) == {"PAGE_VIEW", "PRODUCT_ADDED", "SEARCH", "ORDER_COMPLETED",
                          "IDENTIFY", "CUSTOM"}  # fmt: skip


def test_identify_builds_identifiers_from_email_user_id_and_record_ids() -> None:
    mapper = compile_mapping(SITECORE_MAPPING, DIALECT)
    record = next(
        r for r in sample_records(300, guests=30, seed=5)
        if r["event_type"] == "IDENTIFY" and r["user_id"]
    )  # fmt: skip
    (event,) = mapper.map(record, "clickstream").events
    body = json.loads(event.body)
    providers = [i["provider"] for i in body["identifiers"]]
    assert providers[:2] == ["email", "shop_customer"]
    assert body["identifiers"][0]["id"] == record["payload"]["email"]


HEAD = """\
version: 1
defaults:
  fields:
    channel: {const: WEB}
    browser_id: {browser_id_for: anonymous_id}
    pos: site
    currency: {const: EUR}
    language: {const: EN}
    page: page.title
rules:
"""


def _error(rules: str) -> str:
    with pytest.raises(ConfigError) as info:
        compile_text(HEAD + rules, DIALECT, filename="m.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("rules", "line", "expected"),
    [
        (  # IDENTITY without identifiers
            "  - name: ident\n    emit:\n      type: IDENTITY\n      fields:\n"
            "        email: payload.email\n",
            15,
            r"rule 'ident', IDENTITY.*required field\(s\) identifiers",
        ),
        (  # a field the sitecore models do not have
            "  - name: views\n    emit:\n      type: VIEW\n      fields:\n"
            "        session_id: session_id\n",
            15,
            r"rule 'views', VIEW, field 'session_id': ViewEvent has no field 'session_id'",
        ),
        (  # a channel outside the 13 values
            "  - name: views\n    emit:\n      type: VIEW\n      fields:\n"
            "        channel: {const: SERVER_SIDE}\n",
            15,
            r"rule 'views', VIEW, field 'channel': 'SERVER_SIDE' is not one of",
        ),
        (  # a nested order without referenceId
            "  - name: orders\n    emit:\n      type: ORDER_CHECKOUT\n      fields:\n"
            "        order:\n          orderedAt: occurred_at\n"
            "          status: {const: PURCHASED}\n"
            "          currencyCode: currency\n          price: payload.total\n"
            "          paymentType: {const: PayPal}\n",
            16,
            r"rule 'orders', ORDER_CHECKOUT, field 'order'.*referenceId",
        ),
        (  # a nested product field that does not exist
            "  - name: adds\n    emit:\n      type: ADD\n      fields:\n"
            "        product:\n          sku: payload.sku\n",
            16,
            r"rule 'adds', ADD, field 'product.sku': Product has no field 'sku'",
        ),
        (  # browser_id_for elsewhere than browser_id
            "  - name: views\n    emit:\n      type: VIEW\n      fields:\n"
            "        page: {browser_id_for: anonymous_id}\n",
            15,
            r"field 'page': browser_id_for only computes the event's top-level browser_id",
        ),
        (  # browser_id_for of a constant
            "  - name: views\n    emit:\n      type: VIEW\n      fields:\n"
            "        browser_id: {browser_id_for: \"'x'\"}\n",
            15,
            r"field 'browser_id': browser_id_for needs the visitor id from the record",
        ),
    ],
)
def test_rules_that_cannot_make_a_valid_sitecore_event_fail_at_start(
    rules: str, line: int, expected: str
) -> None:
    message = _error(rules)
    assert f"m.yaml:{line}:" in message, message
    assert re.search(expected, message), message


def test_the_same_rule_is_fine_for_asyncapi_but_not_for_sitecore() -> None:
    rules = (
        "version: 1\nrules:\n  - name: views\n    emit:\n      type: VIEW\n      fields:\n"
        "        channel: {const: SERVER_SIDE}\n        browser_id: anonymous_id\n"
        "        session_id: session_id\n        pos: site\n        currency: {const: EUR}\n"
    )
    compile_text(rules, get_dialect("asyncapi"))
    with pytest.raises(ConfigError, match=r"<mapping>:7: rule 'views', VIEW, field 'channel'"):
        compile_text(rules, DIALECT)


def test_a_missing_visitor_id_is_a_record_error_naming_browser_id() -> None:
    mapper = compile_text(HEAD + "  - name: views\n    emit: {type: VIEW}\n", DIALECT)
    record = {"site": "s", "page": {"title": "Home"}, "anonymous_id": None}
    with pytest.raises(Exception, match="browser_id") as info:
        mapper.map(record, "t")
    assert type(info.value).__name__ == "MappingError"
