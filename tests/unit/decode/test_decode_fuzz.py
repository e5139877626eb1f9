"""Whatever bytes arrive, the decoder answers with a value or a DecodeError, nothing else."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.decode.decoders import ConfluentAvroDecoder, SchemalessAvroDecoder, load_schema
from connector.errors import DecodeError
from connector.sample_clickstream import encode_confluent, encode_schemaless, sample_records

AVRO = Path(__file__).resolve().parents[3] / "avro"
V1 = load_schema(AVRO / "clickstream-v1.avsc")
V2 = load_schema(AVRO / "clickstream-v2.avsc")
VALID = encode_schemaless(sample_records(30, guests=10, seed=5), V1)


class _KnownSchemas:
    """Registry stand-in that knows schema id 1 only (no HTTP: this test is about bytes)."""

    def schema(self, schema_id: int) -> Any:
        if schema_id == 1:
            return V1
        raise DecodeError(f"schema id {schema_id} is unknown to the schema registry")


DECODERS = [
    SchemalessAvroDecoder(V1),
    SchemalessAvroDecoder(V1, V2),
    ConfluentAvroDecoder(_KnownSchemas()),  # type: ignore[arg-type]
    ConfluentAvroDecoder(_KnownSchemas(), reader_schema=V2),  # type: ignore[arg-type]
]


def _decode_or_decode_error(data: bytes) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(DecodeError):
            assert isinstance(decoder.decode(data), dict)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_only_decode_errors(data: bytes) -> None:
    _decode_or_decode_error(data)
    _decode_or_decode_error(b"\x00\x00\x00\x00\x01" + data)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_truncated_or_flipped_records_give_only_decode_errors(
    body: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(body) - 1))
    _decode_or_decode_error(body[:cut])
    _decode_or_decode_error(encode_confluent_body(body)[: cut + 5])
    position = data.draw(st.integers(0, len(body) - 1))
    flipped = bytearray(body)
    flipped[position] ^= data.draw(st.integers(1, 255))
    _decode_or_decode_error(bytes(flipped))
    _decode_or_decode_error(encode_confluent_body(bytes(flipped)))


def encode_confluent_body(body: bytes) -> bytes:
    return b"\x00\x00\x00\x00\x01" + body


def test_confluent_helper_matches_the_wire_format() -> None:
    record = sample_records(1, guests=1, seed=1)
    assert encode_confluent(record, V1, 1)[0] == encode_confluent_body(
        encode_schemaless(record, V1)[0]
    )
