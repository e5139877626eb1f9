"""``Dialect.encoder``: the per-event validate + dump the mapper binds equals the generic path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from connector.cdp.dialect import get_dialect
from connector.mapping import compile_mapping
from connector.sample_clickstream import sample_records

CONFIG = Path(__file__).resolve().parents[3] / "config"


@pytest.mark.parametrize(
    ("dialect_name", "mapping"),
    [("asyncapi", "mappings.example.yaml"), ("sitecore", "mappings.sitecore.yaml")],
)
def test_mapped_bodies_are_what_validate_and_dump_makes_of_them(
    dialect_name: str, mapping: str
) -> None:
    dialect = get_dialect(dialect_name)
    mapper = compile_mapping(CONFIG / mapping, dialect)
    seen: set[str] = set()
    for record in sample_records(600, guests=50, seed=3, version=3):
        try:
            events = mapper.map(record, "clickstream").events
        except Exception:  # noqa: BLE001, S112 - records the rules refuse are not this test's
            continue
        for event in events:
            payload = json.loads(event.body)
            assert dialect.encoder(event.event_type)(payload) == event.body
            assert dialect.validate_and_dump(payload) == event.body
            seen.add(event.event_type)
    assert {"VIEW", "ADD", "SEARCH", "IDENTITY", "ORDER_CHECKOUT"} <= seen


def test_encoder_refuses_what_validate_refuses() -> None:
    dialect = get_dialect("sitecore")
    bad = {"type": "VIEW", "channel": "WEB", "browser_id": "b", "pos": "p"}  # no language...
    with pytest.raises(ValidationError) as bound:
        dialect.encoder("VIEW")(bad)
    with pytest.raises(ValidationError) as generic:
        dialect.validate(bad)
    assert bound.value.errors() == generic.value.errors()


def test_encoder_of_a_custom_name_uses_the_custom_model() -> None:
    dialect = get_dialect("asyncapi")
    payload = json.loads(
        dialect.validate_and_dump(
            {
                "type": "WISHLIST_ADDED", "channel": "WEB", "language": "EN", "currency": "EUR",
                "page": "https://x.example/", "pos": "x", "browser_id": "b", "session_id": "s",
            }
        )
    )  # fmt: skip
    assert dialect.encoder("WISHLIST_ADDED")(payload) == dialect.validate_and_dump(payload)
