"""Compile an Avro writer schema into a straight-line Python reader (the decoder's fast path).

fastavro's ``schemaless_reader`` interprets the parsed schema for every value it reads
(dispatch on type names, dict lookups per field); for the clickstream envelope that is
most of the time spent per record. This module does that interpretation once: it emits
Python source with one inlined read per field and ``exec``s it. The output equals
fastavro's (same logical-type conversions), checked by a differential test against it.

Scope: the writer schema alone (no resolution against a reader schema: the decoder uses
fastavro whenever a different reader schema applies), no recursive named types, and the
logical types timestamp-millis/-micros, date and decimal. ``compile_reader`` raises
``Unsupported`` for anything else and the caller keeps using fastavro.

A compiled reader raises EOFError, IndexError, ValueError, OverflowError or struct.error on
bytes that do not fit; the decoder turns those into DecodeError as it does for fastavro.
It is stricter than fastavro in two places: a negative enum index and an overlong varint
are errors rather than read as something.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable
from typing import Any

from connector.errors import InternalError

__all__ = ["CompiledReader", "LeftOver", "Unsupported", "compile_reader"]

# reader(data, position) → value; raises LeftOver if bytes remain after the value.
CompiledReader = Callable[[bytes, int], Any]

_FASTAVRO_LOGICAL = {  # converted by fastavro but not here: fall back to fastavro
    "int-time-millis", "long-time-micros", "long-local-timestamp-millis",
    "long-local-timestamp-micros", "string-uuid", "fixed-decimal",
}  # fmt: skip
_PRIMITIVE = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class Unsupported(InternalError):
    """The schema uses something this compiler does not handle; use fastavro instead."""


class LeftOver(InternalError, ValueError):
    """Bytes remain after the value: the data was written with another schema."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} bytes left over after the Avro record")
        self.count = count


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at ``pos`` (the multi-byte case; one byte is inlined by the code)."""
    result, pos = _raw_varint(data, pos)
    return (result >> 1) ^ -(result & 1), pos


def _raw_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Varint at ``pos`` still zig-zag encoded (even = non-negative): for indexes, lengths."""
    byte = data[pos]
    pos += 1
    result = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
    return result, pos


class _Emitter:
    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.count = 0
        self.stack: list[str] = []

    def var(self) -> str:
        """A fresh local variable name for the generated reader."""
        self.count += 1
        return f"v{self.count}"

    def const(self, value: Any) -> str:
        """Bind ``value`` as a constant of the generated reader; its name there."""
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, indent: int, *lines: str) -> None:
        """Append source lines at ``indent`` levels."""
        self.lines.extend("    " * indent + line for line in lines)

    def long(self, target: str, ind: int) -> None:
        """Emit a zig-zag varint read (Avro int and long) into ``target``."""
        self.emit(ind, "b = d[p]", "if b < 128:", f"    {target} = (b >> 1) ^ -(b & 1)",
                  "    p += 1", "else:", f"    {target}, p = _varint(d, p)")  # fmt: skip

    def raw(self, target: str, ind: int) -> None:
        """Read a varint without zig-zag decoding: twice the value, odd if negative."""
        self.emit(ind, f"{target} = d[p]", "p += 1", f"if {target} > 127:",
                  f"    {target}, p = _raw_varint(d, p - 1)")  # fmt: skip

    def length_prefixed(self, target: str, ind: int, text: bool) -> None:
        """Emit a length-prefixed read (Avro bytes, or string when ``text``) into ``target``."""
        self.raw("m", ind)
        # A length past the end is not checked here: the slice comes out short, p ends up
        # beyond n, and the check at the end of read() (or the next d[p]) raises.
        self.emit(ind, "if m & 1:", "    raise ValueError('negative length')", "e = p + (m >> 1)")
        read = "d[p:e].decode()" if text else "d[p:e]"
        self.emit(ind, f"{target} = {read}", "p = e")

    def value(self, schema: Any, target: str, ind: int) -> None:
        """Emit code that reads one value of ``schema`` into the local ``target``."""
        if isinstance(schema, list):
            return self.union(schema, target, ind)
        if isinstance(schema, str):
            if schema in _PRIMITIVE:
                return self.primitive(schema, target, ind)
            if schema not in self.named:
                raise Unsupported(f"unknown named type {schema}")
            if schema in self.stack:
                raise Unsupported(f"recursive type {schema}")
            self.stack.append(schema)
            self.value(self.named[schema], target, ind)
            self.stack.pop()
            return None
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None and isinstance(kind, str):
            return self.logical(schema, f"{kind}-{logical}", target, ind)
        if kind == "record" or kind == "error":
            return self.record(schema, target, ind)
        if kind == "enum":
            symbols = self.const(tuple(schema["symbols"]))
            self.raw("i", ind)
            self.emit(ind, "if i & 1:", "    raise IndexError('negative enum index')",
                      f"{target} = {symbols}[i >> 1]")  # fmt: skip
            return None
        if kind == "fixed":
            self.emit(ind, f"e = p + {int(schema['size'])}", f"{target} = d[p:e]", "p = e")
            return None
        if kind == "array":
            return self.blocks(schema["items"], None, target, ind)
        if kind == "map":
            return self.blocks(schema["values"], "string", target, ind)
        return self.value(kind, target, ind)

    def primitive(self, kind: str, target: str, ind: int) -> None:
        """Emit the read of one primitive type into ``target``."""
        if kind == "null":
            self.emit(ind, f"{target} = None")
        elif kind == "boolean":
            self.emit(ind, f"{target} = d[p] != 0", "p += 1")
        elif kind in ("int", "long"):
            self.long(target, ind)
        elif kind in ("float", "double"):
            fmt, size = ("_float", 4) if kind == "float" else ("_double", 8)
            self.emit(ind, f"{target} = {fmt}(d, p)[0]", f"p += {size}")
        else:
            self.length_prefixed(target, ind, text=kind == "string")

    def logical(self, schema: dict[str, Any], key: str, target: str, ind: int) -> None:
        """Emit the base type's read, then the conversion fastavro makes for the logical
        type (``key``: base-logical), if any; Unsupported for one only fastavro makes."""
        base = {k: v for k, v in schema.items() if k != "logicalType"}
        if key in _FASTAVRO_LOGICAL:
            raise Unsupported(f"logical type {key}")
        self.value(base, target, ind)
        if key == "long-timestamp-millis":
            self.emit(ind, f"{target} = _EPOCH + _td(milliseconds={target})")
        elif key == "long-timestamp-micros":
            self.emit(ind, f"{target} = _EPOCH + _td(microseconds={target})")
        elif key == "int-date":
            self.emit(ind, f"{target} = _fromordinal({target} + {dt.date(1970, 1, 1).toordinal()})")
        elif key == "bytes-decimal":
            ctx = self.const(decimal.Context(prec=int(schema["precision"])))
            scale = -int(schema.get("scale", 0))
            self.emit(ind, f"{target} = {ctx}.create_decimal(_from_bytes({target}, 'big', "
                      f"signed=True)).scaleb({scale}, {ctx})")  # fmt: skip
        # Any other logicalType is ignored, as fastavro ignores it: the base value stands.

    def record(self, schema: dict[str, Any], target: str, ind: int) -> None:
        """Emit each field's read in order, then build the record dict into ``target``."""
        # Pushed so a reference to this record from inside itself is seen as recursion.
        self.stack.append(schema.get("name", ""))
        parts = []
        for field in schema["fields"]:
            var = self.var()
            self.value(field["type"], var, ind)
            parts.append(f"{field['name']!r}: {var}")
        self.stack.pop()
        self.emit(ind, f"{target} = {{{', '.join(parts)}}}")

    def union(self, branches: list[Any], target: str, ind: int) -> None:
        """Emit the branch index read and one ``if`` arm per branch."""
        index = self.var()
        self.raw(index, ind)  # branch k is 2k in zig-zag form: no decoding needed
        for number, branch in enumerate(branches):
            self.emit(ind, f"{'if' if number == 0 else 'elif'} {index} == {2 * number}:")
            self.value(branch, target, ind + 1)
        self.emit(ind, "else:", f"    raise IndexError('union branch', {index})")

    def blocks(self, item: Any, key: str | None, target: str, ind: int) -> None:
        """Emit an array (``key`` None) or map read: blocks of items until a zero count."""
        count, item_var, key_var = self.var(), self.var(), self.var()
        self.emit(ind, f"{target} = []" if key is None else f"{target} = {{}}")
        self.long(count, ind)
        self.emit(ind, f"while {count}:")
        self.emit(ind + 1, f"if {count} < 0:", f"    {count} = -{count}")
        self.long("m", ind + 2)  # block size in bytes: not needed to read the items
        # Every item takes at least one byte here (see _min_width), so a count larger than
        # what is left is corrupt: stop before allocating for it.
        self.emit(ind + 1, f"if {count} > n - p:", f"    raise EOFError({count})")
        self.emit(ind + 1, f"for _ in range({count}):")
        if key is not None:
            self.length_prefixed(key_var, ind + 2, text=True)
        self.value(item, item_var, ind + 2)
        self.emit(
            ind + 2,
            f"{target}.append({item_var})" if key is None else f"{target}[{key_var}] = {item_var}",
        )
        self.long(count, ind + 1)
        if key is None and self._min_width(item) == 0:
            raise Unsupported("array of zero-width items")

    def _min_width(self, schema: Any) -> int:
        if isinstance(schema, str):
            if schema == "null":
                return 0
            return 1 if schema in _PRIMITIVE else self._min_width(self.named[schema])
        if isinstance(schema, list):
            return 1
        kind = schema["type"]
        if kind in ("record", "error"):
            return sum(self._min_width(f["type"]) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return 1 if not isinstance(kind, str) or kind != "null" else 0


def compile_reader(schema: Any) -> CompiledReader:
    """A function reading one value of the parsed writer ``schema`` from ``data[pos:]``.

    Raises Unsupported if the schema needs something only fastavro handles.
    """
    named = dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}
    emitter = _Emitter(named)
    emitter.value(schema, "result", 1)
    body = "\n".join(emitter.lines)
    source = (
        "def read(d, p):\n    n = len(d)\n"
        f"{body}\n    if p != n:\n        raise EOFError() if p > n else LeftOver(n - p)\n"
        "    return result\n"
    )
    namespace: dict[str, Any] = {
        "_varint": _varint,
        "_raw_varint": _raw_varint,
        "_float": struct.Struct("<f").unpack_from,
        "_double": struct.Struct("<d").unpack_from,
        "_EPOCH": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        "_td": dt.timedelta,
        "_fromordinal": dt.date.fromordinal,
        "_from_bytes": int.from_bytes,
        "LeftOver": LeftOver,
        **emitter.consts,
    }
    try:
        code = compile(source, "<compiled avro reader>", "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        # Python limits nesting (about 20 blocks): a deeply nested schema stays with fastavro.
        raise Unsupported(f"generated reader does not compile: {exc}") from exc
    exec(code, namespace)  # noqa: S102 - source generated from a parsed schema, names repr()-quoted
    reader: CompiledReader = namespace["read"]
    return reader
