"""The studio's sample records from Kafka: a topic's latest records, only read.

``latest_records(settings, topic, count)`` reads the last ``count`` records
of the topic without joining the consumer group and without committing:

1. the consumer is only ever ``assign()``-ed to partitions (no ``subscribe``,
   so no group membership, no rebalance of the running connector's group);
   its ``group.id`` is a throwaway one librdkafka requires, and
   ``enable.auto.commit`` is off and ``commit`` is never called, so no
   group's offsets move;
2. each record is decoded by the decoder ``run`` builds for the topic
   (Confluent wire format with the registry, or schemaless Avro with the
   local schema), then written out as the JSON the studio edits and
   ``as_decoded`` reads back (timestamps as epoch numbers, decimals as
   numbers): what the rules see is what they see in ``run``.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from decimal import Decimal
from typing import Any

from connector.config import Settings
from connector.decode.decoders import ValueDecoder
from connector.decode.registry import RegistryClient
from connector.decode.schemas import load_schema
from connector.errors import ConfigError, DecodeError, TransientError

__all__ = ["latest_records", "to_json"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SCALE = {"timestamp-millis": 1000, "timestamp-micros": 1_000_000,
          "local-timestamp-millis": 1000, "local-timestamp-micros": 1_000_000}  # fmt: skip


def to_json(schema: Any, value: Any) -> Any:
    """A decoded value as JSON values ``as_decoded`` turns back into the same value."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _plain(schema, value, named)


def _plain(schema: Any, value: Any, named: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        schema = named.get(schema, schema)
    if isinstance(schema, list):  # a union: the branch the value's Python type fits
        for branch in schema:
            if branch != "null" and value is not None:
                try:
                    return _plain(branch, value, named)
                except (TypeError, KeyError, AttributeError):
                    continue
        return _scalar(value)
    if not isinstance(schema, dict):
        return _scalar(value)
    kind, logical = schema.get("type"), schema.get("logicalType")
    if logical in _SCALE and isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return round((aware - _EPOCH).total_seconds() * _SCALE[logical])
    if kind == "record" and isinstance(value, dict):
        types = {f["name"]: f["type"] for f in schema["fields"]}
        return {k: _plain(types.get(k, "null"), v, named) for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        return [_plain(schema["items"], v, named) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _plain(schema["values"], v, named) for k, v in value.items()}
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scalar(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):  # outside a logical type we know: its text
        return value.isoformat()
    if isinstance(value, dt.date):  # Avro date: days since the epoch
        return (value - _EPOCH.date()).days
    if isinstance(value, dt.time):  # Avro time-millis: milliseconds since midnight
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + (
            value.microsecond // 1000
        )
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def latest_records(settings: Settings, topic: str, count: int, timeout: float = 15.0) -> list[str]:
    """The JSON texts of ``topic``'s last ``count`` records (all partitions, oldest first)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from connector.settle.stage import build_decoder

    try:
        spec = settings.topic_for(topic)
    except KeyError as exc:
        raise ConfigError(f"topic {topic!r} is not in the config") from exc
    reg = settings.schema_registry
    registry = (
        RegistryClient(reg.url, timeout=reg.timeout_seconds, basic_auth=reg.basic_auth())
        if reg is not None and spec.decoder == "confluent"
        else None
    )
    decoder = build_decoder(spec, registry)
    conf = settings.kafka.consumer_conf() | {
        # A throwaway id librdkafka insists on; assign() never joins it and nothing commits.
        "group.id": f"cdp-connector-studio-{secrets.token_hex(6)}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    consumer = Consumer(conf)
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise ConfigError(f"cannot read topic {topic!r}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise ConfigError(f"topic {topic!r} is not on the broker")
        ends: dict[int, int] = {}
        starts = []
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, max(low, high - count)))
        if not starts:
            return []
        consumer.assign(starts)
        raw = _read_until(consumer, ends, time.monotonic() + timeout)
    finally:
        consumer.close()
    raw.sort(key=lambda item: item[0])
    local = spec.reader_schema or (spec.schema_path if spec.decoder == "schemaless" else None)
    schema = load_schema(local) if local is not None else None
    return [_as_text(decoder, schema, registry, value) for _, value in raw[-count:]]


def _read_until(consumer: Any, ends: dict[int, int], deadline: float) -> list[tuple[Any, bytes]]:
    """``(sort key, value)`` of every record up to each partition's end as of the start."""
    raw: list[tuple[Any, bytes]] = []
    left = dict(ends)
    while left and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        partition, offset = message.partition(), message.offset()
        if partition in left and offset < left[partition]:
            raw.append(((message.timestamp()[1], partition, offset), message.value()))
            if offset + 1 >= left[partition]:
                del left[partition]
    return raw


def _as_text(
    decoder: ValueDecoder, schema: Any, registry: RegistryClient | None, value: bytes | None
) -> str:
    """A record as the studio's JSON text, or a note saying why it cannot be decoded."""
    try:
        record = decoder.decode(value)
    except (DecodeError, TransientError) as exc:
        return json.dumps({"-studio": f"the topic's record cannot be decoded: {exc}"})
    if schema is None:  # Confluent wire format: the writer schema the record names
        assert value is not None and registry is not None  # noqa: S101 - decoded above
        schema = registry.schema(int.from_bytes(value[1:5], "big"))
    return json.dumps(to_json(schema, record), ensure_ascii=False)
