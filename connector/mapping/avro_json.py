"""Records written as JSON turned into the Python values fastavro writes for a schema.

``map --schema`` and mapping tests take records as JSON and send them through
the run's decoder, so what the rules see is what they see in ``run``. JSON
cannot say which branch of a union a value is, nor carry a decimal exactly;
:func:`from_json` decides both from the schema: a decimal becomes a
``Decimal`` (from the number's text), and an object in a union of records
goes to the one branch whose fields it fits (or the branch its ``"-type"``
key names), passed to fastavro as ``(name, value)``. An ambiguous object is
refused rather than guessed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connector.errors import InternalError

__all__ = ["JsonRecordError", "from_json"]


class JsonRecordError(InternalError, ValueError):
    """The JSON value does not fit the schema (the message says where)."""


def from_json(schema: Any, value: Any) -> Any:
    """``value`` (parsed JSON) in the form fastavro writes for ``schema`` (parsed by fastavro)."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _convert(schema, value, named, "record")


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    return named.get(schema, schema) if isinstance(schema, str) else schema


def _convert(schema: Any, value: Any, named: dict[str, Any], where: str) -> Any:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        return _union(schema, value, named, where)
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if schema.get("logicalType") == "decimal" and isinstance(value, int | float | str):
        return Decimal(str(value))
    if kind == "record" and isinstance(value, dict):
        out = {k: v for k, v in value.items() if k != "-type"}
        for entry in schema["fields"]:
            if entry["name"] in out:
                name = entry["name"]
                out[name] = _convert(entry["type"], out[name], named, f"{where}.{name}")
        return out
    if kind == "array" and isinstance(value, list):
        return [_convert(schema["items"], v, named, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {k: _convert(schema["values"], v, named, f"{where}.{k}") for k, v in value.items()}
    return value


def _union(branches: list[Any], value: Any, named: dict[str, Any], where: str) -> Any:
    resolved = [_resolve(b, named) for b in branches]
    if value is None:
        return None
    records = [b for b in resolved if isinstance(b, dict) and b.get("type") == "record"]
    if isinstance(value, dict) and records:
        wanted = value.get("-type")
        if wanted is not None:
            fits = [b for b in records if b["name"] in (wanted, f".{wanted}") or
                    b["name"].rpartition(".")[2] == wanted]  # fmt: skip
        else:
            fits = [b for b in records if _fits(b, value)]
        if len(fits) != 1:
            names = ", ".join(b["name"].rpartition(".")[2] for b in fits or records)
            how = "fits several branches" if fits else "fits no branch"
            raise JsonRecordError(
                f'{where}: the object {how} of the union ({names}); add "-type": NAME to say which'
            )
        branch = fits[0]
        return (branch["name"], _convert(branch, value, named, where))
    for branch in resolved:
        if branch != "null":
            return _convert(branch, value, named, where)  # scalars: fastavro picks the branch
    return value


def _fits(record: dict[str, Any], value: dict[str, Any]) -> bool:
    fields = {entry["name"]: entry for entry in record["fields"]}
    keys = set(value) - {"-type"}
    required = {name for name, entry in fields.items() if "default" not in entry}
    return keys <= set(fields) and required <= keys
