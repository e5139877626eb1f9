"""Records written by confluent-kafka's AvroSerializer to a real broker decode back equal,
with writer schemas fetched from a real registry (Apicurio, Confluent-compatible API)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.decode.decoders import ConfluentAvroDecoder, RegistryClient, load_schema
from connector.errors import DecodeError
from connector.sample_clickstream import sample_records, writable
from scripts.services.registry import Registry
from tests.integration.kafka_helpers import create_topic, produce

pytestmark = pytest.mark.integration

AVRO = Path(__file__).resolve().parents[2] / "avro"


def _serialize(
    registry_url: str, topic: str, schema_file: str, records: list[dict[str, Any]]
) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs exactly as a real producer writes them, registering the schema."""
    ctx = SerializationContext(topic, MessageField.VALUE)
    with SchemaRegistryClient({"url": registry_url}) as client:
        serializer = AvroSerializer(client, (AVRO / schema_file).read_text(), to_dict=writable)
        return [(r["anonymous_id"].encode(), serializer(r, ctx)) for r in records]


def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=count, timeout=0.5):
                assert msg.error() is None
                got.append((msg.key(), msg.value()))
            if len(got) >= count:
                break
    finally:
        consumer.close()
    return got


def test_serializer_records_from_the_broker_decode_back_equal(
    bootstrap: str, schema_registry: Registry, unique: str
) -> None:
    topic = f"clicks-{unique}"
    create_topic(bootstrap, topic, partitions=1)
    records = sample_records(200, guests=40, seed=21)
    produce(
        bootstrap, topic, _serialize(schema_registry.url, topic, "clickstream-v1.avsc", records)
    )

    decoder = ConfluentAvroDecoder(RegistryClient(schema_registry.url))
    consumed = _consume(bootstrap, topic, f"g-{unique}", len(records))

    assert consumed[0][1][0] == 0  # magic byte: real Confluent wire format
    assert [decoder.decode(value) for _, value in consumed] == records
    assert [key.decode() for key, _ in consumed] == [r["anonymous_id"] for r in records]


def test_evolved_schema_under_the_same_subject_decodes_too(
    bootstrap: str, schema_registry: Registry, unique: str
) -> None:
    topic = f"evolve-{unique}"
    create_topic(bootstrap, topic, partitions=1)
    old = sample_records(20, guests=5, seed=22)
    order = next(r for r in old if r["event_type"] == "ORDER_COMPLETED")
    apple_pay = {**order["payload"], "payment_type": "APPLE_PAY"}
    later = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    new = [
        {**order, "consent_given": True, "payload": apple_pay},
        {**old[0], "occurred_at": later, "consent_given": None},
    ]
    produce(bootstrap, topic, _serialize(schema_registry.url, topic, "clickstream-v1.avsc", old))
    produce(bootstrap, topic, _serialize(schema_registry.url, topic, "clickstream-v2.avsc", new))
    values = [value for _, value in _consume(bootstrap, topic, f"g-{unique}", len(old) + 2)]
    ids = {int.from_bytes(value[1:5], "big") for value in values}
    assert len(ids) == 2  # v1 and v2 registered as two schemas under the topic's subject

    as_written = ConfluentAvroDecoder(RegistryClient(schema_registry.url))
    as_v1 = ConfluentAvroDecoder(
        RegistryClient(schema_registry.url), reader_schema=load_schema(AVRO / "clickstream-v1.avsc")
    )
    as_v2 = ConfluentAvroDecoder(
        RegistryClient(schema_registry.url), reader_schema=load_schema(AVRO / "clickstream-v2.avsc")
    )

    assert [as_written.decode(v) for v in values] == old + new
    assert [as_v2.decode(v) for v in values] == [{**r, "consent_given": None} for r in old] + new
    downgraded = [as_v1.decode(v) for v in values[-2:]]
    assert downgraded[0]["payload"]["payment_type"] == "OTHER"
    assert all("consent_given" not in r for r in downgraded)


def test_unknown_schema_id_against_the_real_registry_is_a_decode_error(
    schema_registry: Registry,
) -> None:
    decoder = ConfluentAvroDecoder(RegistryClient(schema_registry.url))

    with pytest.raises(DecodeError, match="schema id 987654 is unknown"):
        decoder.decode(b"\x00" + (987654).to_bytes(4, "big") + b"\x00")
