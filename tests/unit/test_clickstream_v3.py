"""Schema v3 (page.utm) is an evolution the registry accepts under FULL compatibility:
v1/v2 data reads with the v3 reader and v3 data with the v1/v2 readers; the sitecore
mapping turns v3 page views into VIEW events with referrer and UTM fields."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer

from connector.cdp import get_dialect
from connector.decode.decoders import SchemalessAvroDecoder
from connector.decode.schemas import load_schema
from connector.mapping import compile_mapping
from connector.sample_clickstream import encode_schemaless, sample_records, writable

REPO = Path(__file__).resolve().parents[2]
V1, V2, V3 = (load_schema(REPO / "avro" / f"clickstream-v{n}.avsc") for n in (1, 2, 3))
RECORDS_V3 = sample_records(200, guests=20, seed=3, version=3)


def _write(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, writable(record))
    return buf.getvalue()


def test_v3_samples_round_trip_and_carry_utm_for_some_pages() -> None:
    decoded = [SchemalessAvroDecoder(V3).decode(b) for b in encode_schemaless(RECORDS_V3, V3)]
    assert decoded == RECORDS_V3
    with_utm = [r for r in RECORDS_V3 if r["page"]["utm"]]
    assert 0 < len(with_utm) < len(RECORDS_V3)
    assert all("utm_source=" in r["page"]["url"] for r in with_utm)


def test_v1_samples_are_unchanged_by_the_v3_option() -> None:
    v1 = sample_records(50, guests=10, seed=3)
    assert all("utm" not in r["page"] and "consent_given" not in r for r in v1)
    assert SchemalessAvroDecoder(V1).decode(encode_schemaless(v1, V1)[7]) == v1[7]


@pytest.mark.parametrize("old", [V1, V2], ids=["v1", "v2"])
def test_old_data_reads_with_the_v3_reader_as_no_utm(old: Any) -> None:
    record = sample_records(1, seed=3)[0]
    if old is V2:
        record = {**record, "consent_given": True}
    decoded = SchemalessAvroDecoder(old, V3).decode(_write(old, record))
    assert decoded["page"] == {**record["page"], "utm": None}


@pytest.mark.parametrize("old", [V1, V2], ids=["v1", "v2"])
def test_v3_data_reads_with_old_readers_without_utm(old: Any) -> None:
    record = next(r for r in RECORDS_V3 if r["page"]["utm"])
    decoded = SchemalessAvroDecoder(V3, old).decode(_write(V3, record))
    assert "utm" not in decoded["page"]
    assert decoded["page"]["url"] == record["page"]["url"]


def test_sitecore_mapping_sends_referrer_and_utm_on_views() -> None:
    dialect = get_dialect("sitecore")
    mapper = compile_mapping(REPO / "config" / "mappings.sitecore.yaml", dialect)
    views = [r for r in RECORDS_V3 if r["event_type"] == "PAGE_VIEW"]
    bodies = [json.loads(e.body) for r in views for e in mapper.map(r, "clickstream").events]
    for record, body in zip(views, bodies, strict=True):
        dialect.validate(body)
        utm = record["page"]["utm"] or {}
        assert {k: body[k] for k in body if k.startswith("utm_")} == {
            f"utm_{k}": v for k, v in utm.items() if v is not None
        }
        assert body.get("referrer") == record["page"]["referrer"]
    assert any("utm_campaign" in b for b in bodies) and any("referrer" in b for b in bodies)
