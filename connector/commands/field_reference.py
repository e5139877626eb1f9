"""The field reference of a dialect, generated from its payload models.

``cdp-connector fields`` prints it and docs/mapping.md carries the same tables
(a test compares them), so the reference can never drift from what the
compiler and the models check: per event type every field, nested ones as
``order.referenceId`` / ``items[].sku``, required or optional, its type and
constraints, and the allowed values of enumerations.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from connector.mapping.protocol import DialectLike
from connector.mapping.targets import wire_key

__all__ = ["FieldRow", "event_rows", "markdown", "text"]

_CUSTOM = "CUSTOM"
_LONG_PATTERN = 80  # longer patterns (email, language codes) are not spelled out


@dataclass(frozen=True)
class FieldRow:
    """One line of the reference."""

    path: str
    required: bool
    type: str
    allowed: str


def event_rows(model: type[BaseModel]) -> list[FieldRow]:
    """Every field of ``model`` (nested models flattened into dotted paths), in model order."""
    return list(_rows(model, ""))


def _rows(model: type[BaseModel], prefix: str) -> Iterator[FieldRow]:
    for name, info in model.model_fields.items():
        path = prefix + wire_key(name, info)
        annotation, notes, allowed = _unwrap(info.annotation, [info])
        kind, nested = _kind(annotation)
        if model.model_config.get("extra") == "allow" and not prefix:
            notes.append("more attributes allowed")
        yield FieldRow(path, info.is_required(), ", ".join([kind, *notes]), allowed)
        if nested is not None:
            yield from _rows(nested, path + ("[]." if kind.startswith("list") else "."))
    if model.model_config.get("extra") == "allow":
        yield FieldRow(prefix + "*", False, "extra attributes (scalar values)", "")


def _unwrap(annotation: Any, infos: list[Any]) -> tuple[Any, list[str], str]:
    """The bare type under Optional/Annotated, its constraints, its allowed values."""
    metadata: list[Any] = []
    description = ""
    for info in infos:
        if isinstance(info, FieldInfo):
            metadata.extend(info.metadata)
            description = description or (info.description or "")
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                if isinstance(item, FieldInfo):
                    metadata.extend(item.metadata)
                    description = description or (item.description or "")
                else:
                    metadata.append(item)
            continue
        if origin is typing.Union or origin is types.UnionType:
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
        break
    allowed = ""
    if typing.get_origin(annotation) is Literal:
        allowed = ", ".join(str(v) for v in typing.get_args(annotation))
    return annotation, _constraints(metadata, description), allowed


def _constraints(metadata: list[Any], description: str) -> list[str]:
    notes: list[str] = []
    pattern = None
    for item in metadata:
        if isinstance(item, at.Ge):
            notes.append(f">= {item.ge}")
        elif isinstance(item, at.MinLen) and item.min_length == 1:
            notes.append("non-empty")
        elif isinstance(item, at.MaxLen):
            notes.append(f"at most {item.max_length}")
        elif getattr(item, "pattern", None):
            pattern = item.pattern
    if description:
        notes.append(description)
    elif pattern is not None:
        notes.append(f"pattern `{pattern}`" if len(pattern) <= _LONG_PATTERN else "pattern")
    return notes


def _kind(annotation: Any) -> tuple[str, type[BaseModel] | None]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "enum", None
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        bare, _, _ = _unwrap(item, [])
        kind, nested = _kind(bare)
        return f"list of {kind}", nested
    if origin is dict or annotation is dict:
        return "object (flat: camelCase keys, scalar values)", None
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_kind(_unwrap(a, [])[0])[0] for a in typing.get_args(annotation)), None
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "object", annotation
        if annotation.__name__ == "AwareDatetime":
            return "date-time (ISO 8601 with offset)", None
        scalars: tuple[tuple[type, str], ...] = (
            (bool, "boolean"),
            (int, "integer"),
            (float, "number"),
            (str, "string"),
        )
        for python_type, name in scalars:
            if issubclass(annotation, python_type):
                return name, None
        return annotation.__name__.replace("datetime", "date-time"), None
    return "any", None


def _types(dialect: DialectLike, only: str | None) -> list[str]:
    names = [*sorted(k for k in dialect.models if k != _CUSTOM), _CUSTOM]
    if only is None:
        return names
    wanted = only.upper()
    if wanted not in names:
        from connector.errors import ConfigError
        from connector.mapping.problems import suggest

        raise ConfigError(
            f"the {dialect.name} dialect has no event type {only!r}{suggest(wanted, names)} "
            f"(types: {', '.join(names)})"
        )
    return [wanted]


def _title(name: str) -> str:
    return "custom events (any other name, `custom:`)" if name == _CUSTOM else name


def markdown(dialect: DialectLike, only: str | None = None) -> str:
    """The reference as Markdown tables, one per event type."""
    out: list[str] = []
    for name in _types(dialect, only):
        out += [f"#### {_title(name)}", "", "| field | | type | allowed values |"]
        out.append("|---|---|---|---|")
        for row in event_rows(dialect.models[name]):
            need = "required" if row.required else "optional"
            cells = (row.type.replace("|", "\\|"), row.allowed.replace("|", "\\|"))
            out.append(f"| `{row.path}` | {need} | {cells[0]} | {cells[1]} |")
        out.append("")
    return "\n".join(out)


def text(dialect: DialectLike, only: str | None = None) -> str:
    """The reference as plain text for a terminal."""
    out: list[str] = []
    for name in _types(dialect, only):
        rows = event_rows(dialect.models[name])
        width = max(len(r.path) for r in rows)
        out.append(f"{_title(name)} ({dialect.name})")
        for row in rows:
            need = "required" if row.required else "optional"
            allowed = f"  [{row.allowed}]" if row.allowed else ""
            out.append(f"  {row.path:<{width}}  {need:<8}  {row.type}{allowed}")
        out.append("")
    return "\n".join(out)
