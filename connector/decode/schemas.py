"""Avro schemas as the decoder reads them: parsed once by fastavro, from a file or a registry.

Parsing is done here once per schema so the per-record path never touches schema JSON.
One adjustment is made while parsing: ``string`` types with ``logicalType: uuid`` lose the
logical type, so UUIDs decode to ``str`` (the record shape the rest of the connector expects)
without fastavro building a ``uuid.UUID`` per record only for us to turn it back into text.
The bytes on the wire are a string either way, so resolution and writers are unaffected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeAlias

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, UnknownType

from connector.errors import ConfigError, InternalError

__all__ = ["ParsedSchema", "SchemaError", "load_schema", "parse_schema_text", "prepare_schema"]

# A schema as fastavro's parse_schema returns it (a dict for records, a str for primitives).
ParsedSchema: TypeAlias = Any


class SchemaError(InternalError, ValueError):
    """A schema document is not valid Avro; the message says what fastavro objected to."""


def _without_uuid_logical_type(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_uuid_logical_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "string" and node.get("logicalType") == "uuid":
        return {key: value for key, value in node.items() if key != "logicalType"}
    return {key: _without_uuid_logical_type(value) for key, value in node.items()}


def prepare_schema(schema: Any) -> ParsedSchema:
    """Parse a schema (JSON-like Python value) for fast reading; raise SchemaError if invalid."""
    try:
        return parse_schema(_without_uuid_logical_type(schema))
    except (SchemaParseException, UnknownType, KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc


def parse_schema_text(text: str) -> ParsedSchema:
    """Parse the JSON text of a schema (as a registry serves it); raise SchemaError if invalid."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"schema is not JSON: {exc}") from exc
    return prepare_schema(document)


def load_schema(path: str | Path) -> ParsedSchema:
    """Read and parse an ``.avsc`` file; ConfigError naming the file if it is missing or bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read Avro schema: {exc.strerror or exc}") from exc
    try:
        return parse_schema_text(text)
    except SchemaError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
