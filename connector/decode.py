"""Decode stage: the bytes of a Kafka record → plain Python values.

Two value formats:

- Confluent wire format (``ConfluentAvroDecoder``): magic byte 0, a 4-byte big-endian
  schema id, then the Avro body; the writer schema comes from a schema registry by id.
- Schemaless Avro (``SchemalessAvroDecoder``): the body alone; the writer schema is a
  local ``.avsc`` known from the config.

Both may resolve against a reader schema (Avro schema evolution: added fields take their
defaults, unknown enum symbols fall back to the enum's default). Logical types come out as
Python values: timestamp-millis → aware UTC datetime, decimal → Decimal, date → date,
uuid → str.

Errors: ``DecodeError`` when the bytes are at fault (the record goes to the dead-letter
topic); ``TransientError`` when the registry cannot be asked (never the record's fault).
Called on the Kafka consumer thread, once per record: schemas are parsed once, and the hot
path is one ``BytesIO`` and one ``schemaless_reader`` call.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Literal, Protocol

from fastavro import schemaless_reader
from fastavro.read import SchemaResolutionError

from connector.errors import DecodeError
from connector.registry import RegistryClient
from connector.schemas import ParsedSchema, load_schema

__all__ = [
    "ConfluentAvroDecoder",
    "KeyKind",
    "RegistryClient",
    "SchemalessAvroDecoder",
    "ValueDecoder",
    "decode_key",
    "load_schema",
]

KeyKind = Literal["string", "bytes", "avro"]
MAGIC = 0
HEADER_SIZE = 5

# What fastavro raises on bytes that do not fit the schema: EOFError (truncated), IndexError
# (union branch or enum symbol out of range), UnicodeDecodeError (a ValueError), ValueError
# and OverflowError (absurd lengths, dates or decimals), SchemaResolutionError (reader schema).
_BODY_ERRORS = (
    EOFError,
    IndexError,
    KeyError,
    ValueError,
    OverflowError,
    MemoryError,
    SchemaResolutionError,
)


class ValueDecoder(Protocol):
    """Turns a record value into a dict; DecodeError (dead letter) or TransientError."""

    def decode(self, data: bytes) -> dict[str, Any]: ...


def _read(
    buf: BytesIO, size: int, writer: ParsedSchema, reader: ParsedSchema | None, what: str
) -> Any:
    """Read one Avro datum from ``buf``, which must hold exactly that datum."""
    try:
        value = schemaless_reader(buf, writer, reader)
    except SchemaResolutionError as exc:
        raise DecodeError(f"{what} does not resolve against the reader schema: {exc}") from exc
    except _BODY_ERRORS as exc:
        raise DecodeError(
            f"{what}: Avro body truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    rest = size - buf.tell()
    if rest:
        # Left-over bytes mean the body was written with another schema than we read with.
        raise DecodeError(f"{what}: {rest} bytes left over after the Avro record (wrong schema?)")
    return value


def _as_record(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise DecodeError(f"{what} decodes to {type(value).__name__}, not a record")
    return value


def _reader_or_none(writer: ParsedSchema, reader: ParsedSchema | None) -> ParsedSchema | None:
    # fastavro resolves field by field when a reader is given; skip that when it's the same.
    return None if reader is None or reader == writer else reader


class SchemalessAvroDecoder:
    """Decodes bare Avro bodies written with a known writer schema."""

    def __init__(self, writer_schema: ParsedSchema, reader_schema: ParsedSchema | None = None):
        self._writer = writer_schema
        self._reader = _reader_or_none(writer_schema, reader_schema)

    def decode_any(self, data: bytes) -> Any:
        """The decoded value, whatever Avro type the schema has."""
        if data is None:
            raise DecodeError("record has no value (tombstone)")
        return _read(BytesIO(data), len(data), self._writer, self._reader, "schemaless value")

    def decode(self, data: bytes) -> dict[str, Any]:
        """The decoded record as a dict."""
        return _as_record(self.decode_any(data), "schemaless value")


class ConfluentAvroDecoder:
    """Decodes Confluent wire-format records, writer schemas fetched from a registry by id."""

    def __init__(self, registry: RegistryClient, reader_schema: ParsedSchema | None = None):
        self.registry = registry
        self._reader_schema = reader_schema
        # schema id → (writer, reader or None), so the hot path is one dict lookup.
        self._pairs: dict[int, tuple[ParsedSchema, ParsedSchema | None]] = {}

    def _pair(self, schema_id: int) -> tuple[ParsedSchema, ParsedSchema | None]:
        writer = self.registry.schema(schema_id)  # DecodeError or TransientError
        pair = (writer, _reader_or_none(writer, self._reader_schema))
        self._pairs[schema_id] = pair
        return pair

    def decode_any(self, data: bytes) -> Any:
        """The decoded value, whatever Avro type the writer schema has."""
        if data is None:
            raise DecodeError("record has no value (tombstone)")
        size = len(data)
        if size < HEADER_SIZE:
            raise DecodeError(
                f"record is {size} bytes, shorter than the 5-byte Confluent wire-format header"
            )
        if data[0] != MAGIC:
            raise DecodeError(
                f"magic byte is {data[0]}, expected 0: not Confluent wire format "
                "(schemaless Avro or another serializer?)"
            )
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        pair = self._pairs.get(schema_id) or self._pair(schema_id)
        buf = BytesIO(data)  # shares the bytes object; seek instead of slicing a copy
        buf.seek(HEADER_SIZE)
        return _read(buf, size, pair[0], pair[1], f"value with schema id {schema_id}")

    def decode(self, data: bytes) -> dict[str, Any]:
        """The decoded record as a dict."""
        return _as_record(self.decode_any(data), "value")


def decode_key(
    kind: KeyKind,
    data: bytes | None,
    decoder: SchemalessAvroDecoder | ConfluentAvroDecoder | None = None,
) -> str | bytes | Any | None:
    """Decode a record key: UTF-8 ``string``, raw ``bytes``, or ``avro`` via ``decoder``.

    A missing key stays None whatever the kind.
    """
    if data is None:
        return None
    if kind == "string":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"key is not UTF-8 text: {exc}") from exc
    if kind == "bytes":
        return data
    if kind == "avro":
        if decoder is None:
            raise ValueError("decode_key('avro', ...) needs the key's decoder")
        try:
            return decoder.decode_any(data)
        except DecodeError as exc:
            raise DecodeError(f"key: {exc}") from exc
    raise ValueError(f"unknown key kind {kind!r}")
