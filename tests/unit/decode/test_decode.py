"""Decoding Avro record values and keys: shapes, schema evolution and every error reason."""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer

from connector.decode.decoders import (
    ConfluentAvroDecoder,
    RegistryClient,
    SchemalessAvroDecoder,
    load_schema,
)
from connector.errors import ConfigError, DecodeError, TransientError
from connector.sample_clickstream import (
    EVENT_TYPES,
    encode_confluent,
    encode_schemaless,
    sample_records,
    writable,
)
from tests.unit.registry_stub import stub_registry

AVRO = Path(__file__).resolve().parents[3] / "avro"
V1 = load_schema(AVRO / "clickstream-v1.avsc")
V2 = load_schema(AVRO / "clickstream-v2.avsc")
V1_JSON = json.loads((AVRO / "clickstream-v1.avsc").read_text())
V2_JSON = json.loads((AVRO / "clickstream-v2.avsc").read_text())
RECORDS = sample_records(60, guests=20, seed=3)


def _order(record: dict[str, Any], payment_type: str) -> dict[str, Any]:
    """``record`` turned into an ORDER_COMPLETED event paid with ``payment_type``."""
    order = next(r for r in RECORDS if r["event_type"] == "ORDER_COMPLETED")
    return {**record, "event_type": "ORDER_COMPLETED",
            "payload": {**order["payload"], "payment_type": payment_type}}  # fmt: skip


def _write(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, writable(record))
    return buf.getvalue()


def test_schemaless_round_trip_gives_plain_python_values() -> None:
    decoder = SchemalessAvroDecoder(V1)

    decoded = [decoder.decode(body) for body in encode_schemaless(RECORDS, V1)]

    assert decoded == RECORDS
    assert {r["event_type"] for r in decoded} == set(EVENT_TYPES)
    first = decoded[0]
    assert isinstance(first["event_id"], str)
    assert first["occurred_at"].tzinfo == dt.UTC
    added = next(r for r in decoded if r["event_type"] == "PRODUCT_ADDED")
    assert isinstance(added["payload"]["price"], Decimal)


def test_sample_records_are_deterministic_and_spread_over_guests() -> None:
    records = sample_records(500, guests=300, seed=11)

    assert records == sample_records(500, guests=300, seed=11)
    assert records != sample_records(500, guests=300, seed=12)
    assert len({r["anonymous_id"] for r in records}) > 150
    assert [r["event_type"] for r in records[:6]] == list(EVENT_TYPES)


def test_v1_writer_read_with_v2_reader_gets_new_field_default() -> None:
    decoder = SchemalessAvroDecoder(V1, V2)

    decoded = decoder.decode(_write(V1, RECORDS[0]))

    assert decoded == {**RECORDS[0], "consent_given": None}


def test_v2_writer_read_with_v1_reader_drops_field_and_maps_new_symbol_to_default() -> None:
    record = {**_order(RECORDS[0], "APPLE_PAY"), "consent_given": True}
    decoder = SchemalessAvroDecoder(V2, V1)

    decoded = decoder.decode(_write(V2, record))

    assert "consent_given" not in decoded
    assert decoded["payload"]["payment_type"] == "OTHER"
    assert decoded["payload"]["order_id"] == record["payload"]["order_id"]


def test_reader_schema_that_does_not_resolve_is_a_decode_error() -> None:
    reader = json.loads(json.dumps(V1_JSON))
    reader["fields"].append({"name": "tenant", "type": "string"})  # required, no default
    decoder = SchemalessAvroDecoder(V1, load_schema_from(reader))

    with pytest.raises(DecodeError, match="does not resolve against the reader schema"):
        decoder.decode(_write(V1, RECORDS[0]))


def load_schema_from(document: dict[str, Any]) -> Any:
    from connector.decode.schemas import prepare_schema

    return prepare_schema(document)


@pytest.mark.parametrize("cut", [1, 10, 40, -1])
def test_truncated_body_is_a_decode_error(cut: int) -> None:
    body = _write(V1, RECORDS[3])

    with pytest.raises(DecodeError, match="truncated or corrupt"):
        SchemalessAvroDecoder(V1).decode(body[:cut])


def test_trailing_bytes_are_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="3 bytes left over"):
        SchemalessAvroDecoder(V1).decode(_write(V1, RECORDS[0]) + b"\x00\x00\x00")


def test_enum_symbol_out_of_range_is_a_decode_error() -> None:
    body = bytearray(_write(V1, RECORDS[0]))
    # event_id is a 36-character string (length varint 0x48 + 36 bytes); event_type follows.
    assert body[0] == 0x48
    body[37] = 0x7E  # symbol index 63: EventType has six
    with pytest.raises(DecodeError, match="truncated or corrupt"):
        SchemalessAvroDecoder(V1).decode(bytes(body))


def test_tombstone_value_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="tombstone"):
        SchemalessAvroDecoder(V1).decode(None)  # type: ignore[arg-type]


def test_missing_schema_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.avsc"):
        load_schema(tmp_path / "nope.avsc")
    bad = tmp_path / "bad.avsc"
    bad.write_text('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}')
    with pytest.raises(ConfigError, match=r"bad\.avsc: invalid Avro schema"):
        load_schema(bad)


# -- Confluent wire format ------------------------------------------------------------------


def test_confluent_round_trip_fetches_each_schema_once_with_auth() -> None:
    with stub_registry() as stub:
        stub.serve_schema(7, V1_JSON)
        decoder = ConfluentAvroDecoder(RegistryClient(stub.url, basic_auth=("user", "secret")))

        decoded = [decoder.decode(data) for data in encode_confluent(RECORDS, V1, 7)]

    assert decoded == RECORDS
    assert len(stub.requests) == 1
    path, auth = stub.requests[0]
    assert path == "/schemas/ids/7"
    assert auth == "Basic dXNlcjpzZWNyZXQ="


def test_confluent_evolution_uses_the_reader_schema_for_every_writer_id() -> None:
    with stub_registry() as stub:
        stub.serve_schema(1, V1_JSON)
        stub.serve_schema(2, V2_JSON)
        decoder = ConfluentAvroDecoder(RegistryClient(stub.url), reader_schema=V1)
        v2_record = {**_order(RECORDS[1], "APPLE_PAY"), "consent_given": False}

        old = decoder.decode(encode_confluent([RECORDS[1]], V1, 1)[0])
        new = decoder.decode(b"\x00" + struct.pack(">I", 2) + _write(V2, v2_record))

    assert old == RECORDS[1]
    assert new["payload"]["payment_type"] == "OTHER"
    assert "consent_given" not in new


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x00\x00\x00\x07rest", "magic byte is 1, expected 0"),
        (b"\x00\x00\x00", "shorter than the 5-byte Confluent wire-format header"),
        (b"", "shorter than the 5-byte"),
    ],
)
def test_bad_confluent_header_is_a_decode_error_without_asking_the_registry(
    data: bytes, reason: str
) -> None:
    with stub_registry() as stub:
        decoder = ConfluentAvroDecoder(RegistryClient(stub.url))
        with pytest.raises(DecodeError, match=reason):
            decoder.decode(data)
    assert stub.requests == []


def test_unknown_schema_id_is_a_decode_error_and_remembered_for_a_while() -> None:
    now = [100.0]
    with stub_registry() as stub:
        registry = RegistryClient(stub.url, negative_ttl=30, clock=lambda: now[0])
        decoder = ConfluentAvroDecoder(registry)
        data = encode_confluent([RECORDS[0]], V1, 99)[0]
        for _ in range(3):
            with pytest.raises(DecodeError, match="schema id 99 is unknown"):
                decoder.decode(data)
        assert len(stub.requests) == 1
        now[0] += 31
        stub.serve_schema(99, V1_JSON)
        assert decoder.decode(data) == RECORDS[0]
    assert len(stub.requests) == 2


def test_registry_5xx_is_transient_and_retried_on_the_next_record() -> None:
    with stub_registry() as stub:
        stub.answers["/schemas/ids/1"] = (503, {"error_code": 50302, "message": "overloaded"})
        decoder = ConfluentAvroDecoder(RegistryClient(stub.url))
        data = encode_confluent([RECORDS[0]], V1, 1)[0]
        with pytest.raises(TransientError, match="HTTP 503") as caught:
            decoder.decode(data)
        assert caught.value.retriable
        stub.serve_schema(1, V1_JSON)
        assert decoder.decode(data) == RECORDS[0]


def test_unreachable_registry_is_transient_not_a_record_error() -> None:
    from scripts.services.common import free_port

    registry = RegistryClient(f"http://127.0.0.1:{free_port()}/apis/ccompat/v7", timeout=1)
    decoder = ConfluentAvroDecoder(registry)

    with pytest.raises(TransientError, match="unreachable") as caught:
        decoder.decode(encode_confluent([RECORDS[0]], V1, 1)[0])
    assert not isinstance(caught.value, DecodeError)


def test_garbage_registry_answer_is_transient() -> None:
    with stub_registry() as stub:
        stub.answers["/schemas/ids/1"] = (200, b"<html>proxy login</html>")
        with pytest.raises(TransientError, match="invalid JSON"):
            ConfluentAvroDecoder(RegistryClient(stub.url)).decode(b"\x00\x00\x00\x00\x01\x00")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"}, "PROTOBUF schema, not Avro"),
        ({"schema": '{"type": "nonsense"}'}, "invalid Avro schema"),
        ({"schema": '"string"', "references": [{"name": "a"}]}, "schema references"),
    ],
)
def test_schema_the_decoder_cannot_use_is_a_decode_error(
    answer: dict[str, Any], reason: str
) -> None:
    with stub_registry() as stub:
        stub.answers["/schemas/ids/5"] = (200, answer)
        with pytest.raises(DecodeError, match=reason):
            ConfluentAvroDecoder(RegistryClient(stub.url)).decode(b"\x00\x00\x00\x00\x05\x00")


def test_value_schema_that_is_not_a_record_is_a_decode_error() -> None:
    with stub_registry() as stub:
        stub.serve_schema(3, "string")
        decoder = ConfluentAvroDecoder(RegistryClient(stub.url))
        with pytest.raises(DecodeError, match="decodes to str, not a record"):
            decoder.decode(b"\x00\x00\x00\x00\x03\x06abc")
        assert decoder.decode_any(b"\x00\x00\x00\x00\x03\x06abc") == "abc"


def test_a_new_writer_schema_id_is_announced_once() -> None:
    seen: list[int] = []
    with stub_registry() as stub:
        stub.serve_schema(1, V1_JSON)
        stub.serve_schema(2, V2_JSON)
        decoder = ConfluentAvroDecoder(
            RegistryClient(stub.url), on_new_schema=lambda schema_id, _: seen.append(schema_id)
        )
        for data in [*encode_confluent(RECORDS[:2], V1, 1), *encode_confluent(RECORDS[:1], V2, 2)]:
            decoder.decode(data)
        with_reader = ConfluentAvroDecoder(
            RegistryClient(stub.url), V2, on_new_schema=lambda schema_id, _: seen.append(-1)
        )
        with_reader.decode(encode_confluent(RECORDS[:1], V1, 1)[0])
    assert seen == [1, 2]  # records read with a reader schema take its shape: nothing to re-check
