"""The compiled reader reads exactly what fastavro reads (differential tests against it)."""

from __future__ import annotations

import datetime as dt
import io
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.decode.avro_codegen import LeftOver, Unsupported, compile_reader
from connector.decode.decoders import SchemalessAvroDecoder
from connector.decode.schemas import load_schema, prepare_schema
from connector.sample_clickstream import encode_schemaless, sample_records, writable

AVRO = Path(__file__).resolve().parents[3] / "avro"
V1 = load_schema(AVRO / "clickstream-v1.avsc")
V2 = load_schema(AVRO / "clickstream-v2.avsc")

KITCHEN_SINK = prepare_schema(
    {
        "type": "record",
        "name": "Sink",
        "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "small", "type": "int"},
            {"name": "big", "type": "long"},
            {"name": "ratio", "type": "float"},
            {"name": "precise", "type": "double"},
            {"name": "raw", "type": "bytes"},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
            {"name": "again", "type": "Digest"},
            {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["R", "G"]}},
            {"name": "tags", "type": {"type": "map", "values": {"type": "array", "items": "int"}}},
            {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "odd", "type": {"type": "long", "logicalType": "made-up"}},
            {
                "name": "amount",
                "type": [
                    "null",
                    {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4},
                ],
            },
            {
                "name": "nested",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Inner",
                        "fields": [{"name": "x", "type": ["null", "string", "long", "Colour"]}],
                    },
                },
            },
        ],
    }
)
SINK_VALUE = {
    "flag": True,
    "small": -7,
    "big": 2**62,
    "ratio": 0.5,
    "precise": -1.25e300,
    "raw": b"\x00\xff",
    "digest": b"abcd",
    "again": b"wxyz",
    "colour": "G",
    "tags": {"a": [1, -2, 300000], "": []},
    "at_us": dt.datetime(2026, 11, 26, 12, 30, 1, 123456, tzinfo=dt.UTC),
    "odd": 42,
    "amount": Decimal("-12345678.9012"),
    "nested": [{"x": None}, {"x": "s"}, {"x": 5}, {"x": "R"}],
}


def _fastavro(schema: Any, data: bytes) -> Any:
    return schemaless_reader(io.BytesIO(data), schema)


def _write(schema: Any, value: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, value)
    return buf.getvalue()


def _agrees_with_fastavro(schema: Any, data: bytes) -> None:
    """Whatever the compiled reader accepts, fastavro reads to an equal value."""
    try:
        value = compile_reader(schema)(data, 0)
    except (EOFError, IndexError, ValueError, OverflowError, struct.error):
        return  # the decoder turns these into DecodeError
    assert _fastavro(schema, data) == value


@pytest.mark.parametrize("schema", [V1, V2])
def test_sample_records_read_equal_to_fastavro(schema: Any) -> None:
    records = sample_records(300, guests=50, seed=9)
    if schema is V2:
        records = [{**r, "consent_given": i % 3 == 0 or None} for i, r in enumerate(records)]
    reader = compile_reader(schema)

    for body, record in zip(encode_schemaless(records, schema), records, strict=True):
        assert reader(body, 0) == _fastavro(schema, body) == record


def test_every_type_reads_equal_to_fastavro() -> None:
    body = _write(KITCHEN_SINK, SINK_VALUE)

    assert compile_reader(KITCHEN_SINK)(body, 0) == _fastavro(KITCHEN_SINK, body) == SINK_VALUE


def test_left_over_bytes_are_reported() -> None:
    with pytest.raises(LeftOver, match="2 bytes left over"):
        compile_reader(KITCHEN_SINK)(_write(KITCHEN_SINK, SINK_VALUE) + b"\x00\x00", 0)


def test_recursive_schema_falls_back_to_fastavro() -> None:
    linked = prepare_schema(
        {"type": "record", "name": "Node", "fields": [
            {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}
    )  # fmt: skip
    value = {"value": 1, "next": {"value": 2, "next": None}}
    with pytest.raises(Unsupported, match="recursive"):
        compile_reader(linked)
    assert SchemalessAvroDecoder(linked).decode(_write(linked, value)) == value


def test_deeply_nested_schema_falls_back_to_fastavro() -> None:
    schema: Any = "int"
    for _ in range(15):
        schema = {"type": "array", "items": schema}
    nested = prepare_schema(schema)
    value: Any = [5]
    for _ in range(14):
        value = [value]
    with pytest.raises(Unsupported, match="does not compile"):
        compile_reader(nested)
    assert SchemalessAvroDecoder(nested).decode_any(_write(nested, value)) == value


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BODIES = [
    *encode_schemaless(sample_records(20, guests=5, seed=4), V1),
    *[_write(V2, writable({**r, "consent_given": True})) for r in sample_records(6, 3, 2)],
]


@FUZZ
@given(st.sampled_from(BODIES), st.data())
def test_damaged_clickstream_bodies_read_as_fastavro_reads_them(
    body: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(body)))
    flipped = bytearray(body[:cut])
    for _ in range(data.draw(st.integers(0, 3))):
        if flipped:
            flipped[data.draw(st.integers(0, len(flipped) - 1))] = data.draw(st.integers(0, 255))
    for schema in (V1, V2):
        _agrees_with_fastavro(schema, bytes(flipped))


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_read_as_fastavro_reads_them(data: bytes) -> None:
    _agrees_with_fastavro(KITCHEN_SINK, data)
    _agrees_with_fastavro(KITCHEN_SINK, _write(KITCHEN_SINK, SINK_VALUE)[:20] + data)
