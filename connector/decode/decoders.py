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
Called on the Kafka consumer thread, once per record. Schemas are parsed once; the hot path
is one dict lookup and one call of a reader made for that schema: a reader compiled from the
writer schema (``avro_codegen``, about twice fastavro's speed) or, when a different reader
schema applies or the schema is out of the compiler's scope, fastavro's
``schemaless_reader`` on a ``BytesIO``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any, Protocol

from fastavro import schemaless_reader
from fastavro.read import SchemaResolutionError

from connector.decode.avro_codegen import LeftOver, Unsupported, compile_reader
from connector.decode.registry import RegistryClient
from connector.decode.schemas import ParsedSchema, load_schema
from connector.errors import DecodeError

__all__ = [
    "ConfluentAvroDecoder",
    "RegistryClient",
    "SchemalessAvroDecoder",
    "ValueDecoder",
    "load_schema",
    "make_reader",
]

MAGIC = 0
HEADER_SIZE = 5

# What a reader raises on bytes that do not fit the schema: EOFError (truncated), IndexError
# (union branch or enum symbol out of range), UnicodeDecodeError (a ValueError), ValueError
# and OverflowError (absurd lengths, dates or decimals), struct.error (short float),
# SchemaResolutionError (reader schema).
_BODY_ERRORS = (
    EOFError,
    IndexError,
    KeyError,
    ValueError,
    OverflowError,
    MemoryError,
    struct.error,
    SchemaResolutionError,
)

# reader(data, offset of the Avro body) → value; raises LeftOver if bytes remain.
Reader = Callable[[bytes, int], Any]


class ValueDecoder(Protocol):
    """Turns a record value into a dict; DecodeError (dead letter) or TransientError."""

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """The record value as a dict; settle calls it on the consumer thread."""
        ...


def _present(data: bytes | None) -> bytes:
    """The value's bytes; a tombstone (no value) is a decode error: nothing to map."""
    if data is None:
        raise DecodeError("record has no value (a tombstone); nothing to map")
    return data


def make_reader(
    writer: ParsedSchema, reader: ParsedSchema | None = None, *, compiled: bool = True
) -> Reader:
    """The fastest reader for a schema pair: compiled if possible, else fastavro's."""
    if reader is not None and reader == writer:
        reader = None  # fastavro resolves field by field when given a reader; skip that
    if reader is None and compiled:
        try:
            return compile_reader(writer)
        except Unsupported:
            pass  # e.g. a recursive type: fastavro reads it

    def fastavro_read(data: bytes, offset: int) -> Any:
        buf = BytesIO(data)  # shares the bytes object; seek instead of slicing a copy
        buf.seek(offset)
        value = schemaless_reader(buf, writer, reader)
        rest = len(data) - buf.tell()
        if rest:
            raise LeftOver(rest)
        return value

    return fastavro_read


def _decode_error(exc: Exception, what: str) -> DecodeError:
    """The DecodeError saying why a reader failed on a record's bytes."""
    if isinstance(exc, LeftOver):
        # Left-over bytes mean the body was written with another schema than we read with.
        return DecodeError(f"{what}: {exc} (written with another schema?)")
    if isinstance(exc, SchemaResolutionError):
        return DecodeError(f"{what} does not resolve against the reader schema: {exc}")
    return DecodeError(f"{what}: Avro body truncated or corrupt ({type(exc).__name__}: {exc})")


def _not_a_record(value: Any, what: str) -> DecodeError:
    return DecodeError(f"{what} decodes to {type(value).__name__}, not a record")


class SchemalessAvroDecoder:
    """Decodes bare Avro bodies written with a known writer schema."""

    def __init__(
        self,
        writer_schema: ParsedSchema,
        reader_schema: ParsedSchema | None = None,
        *,
        compiled: bool = True,
    ) -> None:
        self._read = make_reader(writer_schema, reader_schema, compiled=compiled)

    def decode_any(self, data: bytes | None) -> Any:
        """The decoded value, whatever Avro type the schema has."""
        try:
            return self._read(_present(data), 0)
        except _BODY_ERRORS as exc:
            raise _decode_error(exc, "schemaless value") from exc

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """The decoded record as a dict."""
        value = self.decode_any(data)
        if type(value) is not dict:
            raise _not_a_record(value, "schemaless value")
        return value


class ConfluentAvroDecoder:
    """Decodes Confluent wire-format records, writer schemas fetched from a registry by id."""

    def __init__(
        self,
        registry: RegistryClient,
        reader_schema: ParsedSchema | None = None,
        *,
        compiled: bool = True,
        on_new_schema: Callable[[int, ParsedSchema], None] | None = None,
    ) -> None:
        self.registry = registry
        #: Called once per writer schema id, when it is first fetched (mapping re-check).
        self._on_new_schema = on_new_schema
        self._reader_schema = reader_schema
        self._compiled = compiled
        self._readers: dict[int, Reader] = {}  # schema id → reader: one lookup per record

    def _reader_for(self, schema_id: int) -> Reader:
        writer = self.registry.schema(schema_id)  # DecodeError or TransientError
        read = make_reader(writer, self._reader_schema, compiled=self._compiled)
        if self._on_new_schema is not None and self._reader_schema is None:
            self._on_new_schema(schema_id, writer)  # records take the writer's shape
        self._readers[schema_id] = read
        return read

    def decode_any(self, data: bytes | None) -> Any:
        """The decoded value, whatever Avro type the writer schema has."""
        data = _present(data)
        if len(data) < HEADER_SIZE:
            raise DecodeError(
                f"record is {len(data)} bytes, shorter than the 5-byte Confluent wire-format header"
            )
        if data[0] != MAGIC:
            raise DecodeError(
                f"magic byte is {data[0]}, expected 0: not Confluent wire format "
                "(schemaless Avro or another serializer?)"
            )
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        read = self._readers.get(schema_id) or self._reader_for(schema_id)
        try:
            return read(data, HEADER_SIZE)
        except _BODY_ERRORS as exc:
            raise _decode_error(exc, f"value with schema id {schema_id}") from exc

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """The decoded record as a dict."""
        value = self.decode_any(data)
        if type(value) is not dict:
            raise _not_a_record(value, "value")
        return value
