"""The shape of decoded records, read from an Avro schema: what paths can exist, and their types.

The decoder turns a record into dicts, lists and scalars (logical types become
``datetime``, ``date``, ``Decimal``; the mapper then makes them JSON-safe). A
:class:`Shape` says, for every place in such a value, what may be there, so
the path checker (``connector.mapping.pathcheck``) can tell a mistyped path
from a real one without seeing a single record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ANY", "Shape", "shape_of", "shape_of_values"]

Kind = Literal[
    "record", "map", "array", "union", "string", "integer", "number", "boolean", "bytes",
    "date", "datetime", "time", "null", "any",
]  # fmt: skip

_PRIMITIVES: dict[str, Kind] = {
    "string": "string",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "bytes": "bytes",
    "fixed": "bytes",
    "null": "null",
}
_LOGICAL: dict[str, Kind] = {
    "timestamp-millis": "datetime",
    "timestamp-micros": "datetime",
    "local-timestamp-millis": "datetime",
    "local-timestamp-micros": "datetime",
    "date": "date",
    "time-millis": "time",
    "time-micros": "time",
    "decimal": "number",
    "uuid": "string",
}


@dataclass
class Shape:
    """What a decoded value can be at one place of a record.

    ``fields`` for records (built lazily for recursive types), ``item`` for
    arrays and maps (the element / value), ``options`` for unions of several
    non-null branches; ``optional`` when null is one of the branches.
    ``symbols`` are an enum's values (an enum decodes to a string).
    """

    kind: Kind
    name: str = ""
    fields: dict[str, Shape] = field(default_factory=dict)
    item: Shape | None = None
    options: tuple[Shape, ...] = ()
    optional: bool = False
    symbols: tuple[str, ...] = ()
    logical: str | None = None

    def describe(self) -> str:
        """A short type name for messages: ``string``, ``timestamp-millis``, ``record Page``."""
        if self.kind == "union":
            text = " | ".join(o.describe() for o in self.options)
        elif self.kind == "record":
            text = f"record {self.name}" if self.name else "record"
        elif self.kind in ("array", "map") and self.item is not None:
            text = f"{self.kind} of {self.item.describe()}"
        elif self.symbols:
            text = f"enum {self.name}" if self.name else "enum"
        else:
            text = self.logical or self.kind
        return f"{text} or null" if self.optional else text

    def records(self) -> tuple[Shape, ...]:
        """The record branches of this shape (itself, or a union's)."""
        if self.kind == "record":
            return (self,)
        return tuple(o for o in self.options if o.kind == "record")


ANY = Shape("any")


def shape_of(schema: Any) -> Shape:
    """The :class:`Shape` of values decoded with ``schema`` (parsed by fastavro, or raw JSON)."""
    named: dict[str, Shape] = {}
    return _shape(schema, named, "")


def _shape(schema: Any, named: dict[str, Shape], namespace: str) -> Shape:
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return Shape(_PRIMITIVES[schema], name=schema)
        found = named.get(schema) or named.get(f"{namespace}.{schema}")
        return found if found is not None else ANY  # a name defined elsewhere: unknown
    if isinstance(schema, list):
        branches = [_shape(s, named, namespace) for s in schema]
        real = [b for b in branches if b.kind != "null"]
        nullable = len(real) < len(branches)
        if len(real) == 1:
            only = real[0]
            if not nullable:
                return only
            return Shape(**{**only.__dict__, "optional": True})
        return Shape("union", options=tuple(real), optional=nullable)
    if not isinstance(schema, dict):
        return ANY
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if isinstance(logical, str) and logical in _LOGICAL:
        return Shape(_LOGICAL[logical], name=str(kind), logical=logical)
    name = str(schema.get("name", ""))
    space = str(schema.get("namespace", namespace)) if "." not in name else name.rpartition(".")[0]
    if kind == "record" or kind == "error":
        shape = Shape("record", name=name.rpartition(".")[2])
        _remember(named, name, space, shape)
        for entry in schema.get("fields", []):
            shape.fields[entry["name"]] = _shape(entry["type"], named, space)
        return shape
    if kind == "enum":
        shape = Shape("string", name=name.rpartition(".")[2], symbols=tuple(schema["symbols"]))
        _remember(named, name, space, shape)
        return shape
    if kind == "fixed":
        shape = Shape("bytes", name=name.rpartition(".")[2])
        _remember(named, name, space, shape)
        return shape
    if kind == "array":
        return Shape("array", item=_shape(schema.get("items"), named, namespace))
    if kind == "map":
        return Shape("map", item=_shape(schema.get("values"), named, namespace))
    return _shape(kind, named, namespace)  # {"type": "string"} and friends


def _remember(named: dict[str, Shape], name: str, space: str, shape: Shape) -> None:
    short = name.rpartition(".")[2]
    named[short] = shape
    named[f"{space}.{short}" if space else short] = shape


def shape_of_values(values: Iterable[Any], name: str = "") -> Shape:
    """The :class:`Shape` seen in some decoded values (records from a JSON lines file).

    Only what can be seen: objects are records with every key any of them has, lists
    arrays of what their elements are; a scalar (or a value seen only as null) is
    ``any``, so a path is held against the keys that exist, never against a type a
    few samples happened to have.
    """
    shape = _merge([_seen(value) for value in values])
    return Shape(**{**shape.__dict__, "name": name}) if shape.kind == "record" else shape


def _seen(value: Any) -> Shape:
    if isinstance(value, Mapping):
        return Shape("record", fields={str(k): _seen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return Shape("array", item=_merge([_seen(v) for v in value]))
    return ANY


def _merge(shapes: list[Shape]) -> Shape:
    kinds = {s.kind for s in shapes} - {"any"}
    if len(kinds) != 1:
        return ANY  # nothing but scalars and nulls, or objects here and lists there
    (kind,) = kinds
    same = [s for s in shapes if s.kind == kind]
    if kind == "record":
        keys: dict[str, list[Shape]] = {}
        for shape in same:
            for key, child in shape.fields.items():
                keys.setdefault(key, []).append(child)
        return Shape("record", fields={k: _merge(v) for k, v in keys.items()})
    items = [s.item for s in same if s.item is not None and s.item.kind != "any"]
    return Shape("array", item=_merge(items) if items else ANY)
