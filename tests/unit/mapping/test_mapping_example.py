"""config/mappings.example.yaml against the test dialect and the real asyncapi one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.cdp.dialect import get_dialect
from connector.mapping import Mapper, compile_mapping
from connector.sample_clickstream import sample_records
from tests.unit.mapping_dialect import flat_dialect
from tests.unit.mapping_records import RECORDS, record

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "mappings.example.yaml"

EXPECTED_TYPES = {
    "PAGE_VIEW": ["VIEW"],
    "PRODUCT_ADDED": ["ADD"],
    "SEARCH": ["SEARCH"],
    "ORDER_COMPLETED": ["ORDER_CHECKOUT"],
    "IDENTIFY": ["IDENTITY"],
    "CUSTOM": ["WISHLIST_ADDED"],
}


@pytest.fixture(scope="module")
def real_dialect() -> Any:
    return get_dialect("asyncapi")


def _check_every_event_kind(mapper: Mapper) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for event_type, rec in RECORDS.items():
        result = mapper.map(rec, "clickstream")
        assert [e.event_type for e in result.events] == EXPECTED_TYPES[event_type]
        out[event_type] = [json.loads(e.body) for e in result.events]
    return out


def test_example_maps_every_event_kind_with_the_test_dialect() -> None:
    bodies = _check_every_event_kind(compile_mapping(EXAMPLE, flat_dialect()))
    order = bodies["ORDER_COMPLETED"][0]
    assert order["status"] == "CONFIRMED" and order["payment_type"] == "CREDIT_CARD"
    assert bodies["IDENTIFY"][0]["gender"] == "Female"
    assert bodies["IDENTIFY"][0]["date_of_birth"] == "1990-04-17"


def test_example_maps_every_event_kind_with_the_asyncapi_dialect(real_dialect: Any) -> None:
    bodies = _check_every_event_kind(compile_mapping(EXAMPLE, real_dialect))
    view = bodies["PAGE_VIEW"][0]
    assert view["language"] == "EN" and view["currency"] == "GBP"
    assert bodies["ORDER_COMPLETED"][0]["total_price"] == 288.9


def test_example_skip_rules(real_dialect: Any) -> None:
    mapper = compile_mapping(EXAMPLE, real_dialect)
    bot = record("PAGE_VIEW", user_agent="Mozilla/5.0 (compatible; bingbot/2.0)")
    assert mapper.map(bot, "clickstream").skipped_by == "bots"
    no_consent = record("PAGE_VIEW", consent_given=False)
    assert mapper.map(no_consent, "clickstream").skipped_by == "no-consent"
    assert mapper.map(record("PAGE_VIEW", consent_given=True), "clickstream").events


def test_example_maps_the_sample_generator_records(real_dialect: Any) -> None:
    mapper = compile_mapping(EXAMPLE, real_dialect)
    kinds = set()
    for rec in sample_records(600, guests=50, seed=11):
        result = mapper.map(rec, "clickstream")  # a MappingError fails the test
        kinds.update(e.event_type for e in result.events)
    assert {"VIEW", "ADD", "SEARCH", "ORDER_CHECKOUT", "IDENTITY"} <= kinds
