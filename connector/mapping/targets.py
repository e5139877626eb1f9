"""What a payload field expects, read from the dialect's pydantic models.

The compiler checks every mapping rule against the target event model: that
the fields exist, that required ones get a value, and that nested objects and
lists of objects are mapped field by field. This module turns pydantic field
annotations into a small :class:`Target` description it can walk, without
knowing any dialect's field names.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["Target", "TargetField", "accepts_extra", "describe", "model_fields", "wire_key"]


@dataclass(frozen=True)
class TargetField:
    """One field of a target model, under the name the payload uses on the wire."""

    key: str
    required: bool
    target: Target


@dataclass(frozen=True)
class Target:
    """The shape a value must have: an object (model or free dict), a list, or a scalar."""

    kind: Literal["model", "dict", "list", "scalar", "any"]
    model: type[BaseModel] | None = None
    item: Target | None = None
    allowed: frozenset[Any] | None = None  # Literal / Enum values of a scalar
    #: a scalar's JSON type: string, integer, number, boolean, date, datetime (None: any)
    scalar: str | None = None
    #: The field's full type (constraints included): what ``connector.mapping.fit`` checks
    #: a value known at compile time against (None: nothing to check).
    annotation: Any = field(default=None, compare=False, hash=False)
    #: What the field takes, in words, from the model (``uppercase ISO 639-1 code, e.g. EN``).
    description: str = field(default="", compare=False, hash=False)
    #: Where ``allowed`` comes from when it is not the model's (``cdp.points_of_sale``).
    allowed_from: str = field(default="", compare=False, hash=False)

    def describe(self) -> str:
        """The shape in words, for error messages (``object ViewEvent``, ``list of value``)."""
        if self.kind == "model" and self.model is not None:
            return f"object {self.model.__name__}"
        if self.kind == "list" and self.item is not None:
            return f"list of {self.item.describe()}"
        return {"dict": "object", "scalar": "value", "any": "value"}.get(self.kind, self.kind)


_ANY = Target("any")


def describe(annotation: Any, description: str = "") -> Target:
    """The Target for a type annotation (Optional and Annotated unwrapped).

    The annotation is kept whole (``annotation``), with the first description found
    on the way, so a constant can be checked against every constraint of the field.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        found = description or next(
            (e.description for e in extra if isinstance(e, FieldInfo) and e.description), ""
        )
        return replace(describe(inner, found), annotation=annotation, description=found)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return describe(options[0], description)
        return replace(_ANY, annotation=annotation, description=description)
    return replace(_describe(annotation), annotation=annotation, description=description)


def _describe(annotation: Any) -> Target:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = typing.get_args(annotation)
        kind = "string" if all(isinstance(v, str) for v in values) else None
        return Target("scalar", allowed=frozenset(values), scalar=kind)
    if origin in (list, tuple, set, frozenset) or _is_sequence_origin(origin):
        args = typing.get_args(annotation)
        return Target("list", item=describe(args[0]) if args else _ANY)
    if origin is dict or (isinstance(origin, type) and issubclass(origin, Mapping)):
        args = typing.get_args(annotation)
        return Target("dict", item=describe(args[1]) if len(args) == 2 else None)
    if annotation is dict:
        return Target("dict")
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return Target("model", model=annotation)
        if issubclass(annotation, enum.Enum):
            return Target("scalar", allowed=frozenset(m.value for m in annotation))
        return Target("scalar", scalar=_scalar_type(annotation))
    return _ANY


def _scalar_type(annotation: type) -> str | None:
    if annotation.__name__ == "AwareDatetime" or issubclass(annotation, dt.datetime):
        return "datetime"  # pydantic's AwareDatetime is a marker class, not a datetime
    if issubclass(annotation, dt.date):
        return "date"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if issubclass(annotation, kind):
            return name
    return None


def _is_sequence_origin(origin: Any) -> bool:
    import collections.abc as cabc

    return origin in (cabc.Sequence, cabc.MutableSequence, cabc.Iterable)


def wire_key(name: str, info: FieldInfo) -> str:
    """The key a payload uses for a field: its validation alias, else alias, else name."""
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    if info.alias:
        return info.alias
    return name


@functools.cache
def model_fields(model: type[BaseModel]) -> dict[str, TargetField]:
    """The model's fields keyed by wire name; attribute names map to the same entry.

    Worked out once per model (shared: callers only read it)."""
    fields: dict[str, TargetField] = {}
    for name, info in model.model_fields.items():
        key = wire_key(name, info)
        entry = TargetField(
            key,
            info.is_required(),
            describe(info.rebuild_annotation(), info.description or ""),
        )
        fields[key] = entry
        fields.setdefault(name, entry)
    return fields


def accepts_extra(model: type[BaseModel]) -> bool:
    """Whether the model keeps fields it does not declare (``extra="allow"``)."""
    return model.model_config.get("extra") == "allow"
