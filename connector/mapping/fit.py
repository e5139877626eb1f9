"""Does a value fit a payload field? And if not, why, in words — never a raw pattern.

Pure. ``problem(value, target)`` holds a value the compiler knows (a constant, a
``default:``, a lookup table's output) against every constraint of the target
field — type, pattern, enum, bounds, the model's own validators — by asking the
dialect's pydantic type itself, so nothing is checked twice in two ways. The
answer says what was expected with the field's description from the model
(``uppercase ISO 639-1 code, e.g. EN``) and, when one of the usual transforms
would make the value fit, names it (``— or add transform: upper``).

``explain(errors, annotation)`` does the same for pydantic's errors of a whole
payload, per record, without echoing the value (it may be personal data).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from connector.mapping.targets import Target
from connector.mapping.transforms import build_transform

__all__ = [
    "explain",
    "extra_problem",
    "fits",
    "fix_hint",
    "is_member",
    "key_problem",
    "most_entries",
    "problem",
    "transform_for",
]

#: Transforms that often turn a wrong value into a right one, tried in this order.
_FIXES: tuple[tuple[str, Any, str], ...] = (
    ("upper", None, "upper"),
    ("lower", None, "lower"),
    ("trim", None, "trim"),
    ("iso8601", {"unit": "ms"}, "{iso8601: {unit: ms}}"),
    ("number", None, "number"),
    ("integer", None, "integer"),
    ("string", None, "string"),
)

_KINDS = {
    "string_type": "text",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
    "tuple_type": "a list",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "datetime_type": "a date-time (ISO 8601 with offset, e.g. 2026-11-02T08:15:30Z)",
    "datetime_parsing": "a date-time (ISO 8601 with offset, e.g. 2026-11-02T08:15:30Z)",
    "datetime_from_date_parsing": "a date-time (ISO 8601 with offset, e.g. 2026-11-02T08:15:30Z)",
    "timezone_aware": "a date-time with a UTC offset (…Z or …+00:00)",
    "finite_number": "a finite number",
    "missing": "a value (the field is required)",
    "extra_forbidden": "no such field",
}


@lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    bare = annotation
    while typing.get_origin(bare) is typing.Annotated:
        bare = typing.get_args(bare)[0]
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return TypeAdapter(annotation)  # a model brings its own (strict) config
    return TypeAdapter(annotation, config=ConfigDict(strict=True))


def fits(value: Any, target: Target) -> bool:
    """Whether ``value`` passes every constraint of ``target`` (True when nothing is known)."""
    if target.annotation is None:
        return target.allowed is None or value in target.allowed
    try:
        _adapter(target.annotation).validate_python(value)
    except ValidationError:
        return False
    except (TypeError, ValueError):  # an annotation pydantic cannot build: not checked
        return True
    return target.allowed is None or value in target.allowed


def problem(value: Any, target: Target, shown: str = "") -> str | None:
    """Why the known ``value`` cannot be ``target``'s value, in words; None when it can.

    ``'en': expected uppercase ISO 639-1 code, e.g. EN — or add transform: upper``
    (``shown`` instead of ``'en'`` when given).
    """
    if value is None:
        return None
    shown = shown or repr(value)
    if target.allowed is not None and target.allowed_from and value not in target.allowed:
        return _not_allowed(value, target, shown)
    if target.annotation is None:
        if target.allowed and value not in target.allowed:
            return _not_allowed(value, target, shown)
        return None
    try:
        _adapter(target.annotation).validate_python(value)
    except ValidationError as exc:
        errors = exc.errors()
    except (TypeError, ValueError):
        return None
    else:
        if target.allowed is not None and value not in target.allowed:
            return _not_allowed(value, target, shown)
        return None
    if errors[0]["type"] == "literal_error" and not errors[0]["loc"]:
        return _not_allowed(value, target, shown)
    what = _expected(errors, target.annotation, target.description)
    return f"{shown}: {what}{fix_hint(value, target)}"


def _not_allowed(value: Any, target: Target, shown: str) -> str:
    from connector.mapping.problems import suggest

    allowed = sorted(map(str, target.allowed or ()))
    hint = suggest(str(value), allowed) or fix_hint(value, target)
    if target.allowed_from:
        return f"{shown} is not in {target.allowed_from} ({', '.join(allowed)}){hint}"
    return f"{shown} is not one of: {', '.join(allowed)}{hint}"


def fix_hint(value: Any, target: Target) -> str:
    """`` — or add transform: upper`` when that transform makes ``value`` fit ('' if none)."""
    written = transform_for(value, target)
    return f" — or add transform: {written}" if written else ""


def transform_for(value: Any, target: Target, first: str = "") -> str | None:
    """The transform (as written in YAML) that makes ``value`` fit ``target``, if one of the
    usual ones does; ``first``: try that one before the others."""
    if isinstance(value, dict | list) or value is None:
        return None
    ordered = sorted(_FIXES, key=lambda fix: fix[0] != first)
    for name, args, written in ordered:
        try:
            fixed = build_transform(name, args)(value)
        except (TypeError, ValueError, ArithmeticError):
            continue
        if fixed != value and fixed is not None and _json_fits(fixed, target):
            return written
    return None


def _json_fits(value: Any, target: Target) -> bool:
    from connector.mapping.json_values import json_safe

    try:
        return fits(json_safe(value), target)
    except (TypeError, ValueError):
        return False


def explain(errors: Sequence[ErrorDetails], annotation: Any) -> str:
    """What one pydantic error of a payload of type ``annotation`` means, in words.

    Per record: the value is never echoed (it may be personal data), nor the place
    (the caller names the field)."""
    return _expected(errors, annotation, "", with_place=False)


def _expected(
    errors: Sequence[ErrorDetails], annotation: Any, description: str, *, with_place: bool = True
) -> str:
    first = errors[0]
    loc = tuple(first["loc"])
    # A union reports one error per member at the same place: say them all at once.
    members = (
        [e for e in errors if tuple(e["loc"][:-1]) == loc[:-1] and is_member(e["loc"][-1])]
        if loc and is_member(loc[-1])
        else []
    )
    where, at = _where(loc, annotation)
    wanted = (_description_at(annotation, at) if at else "") or (description if not at else "")
    kind = first["type"]
    if len(members) > 1 and all(e["type"].endswith("_type") for e in members):
        kinds = list(dict.fromkeys(_KINDS.get(e["type"], e["type"]) for e in members))
        text = "expected " + (", ".join(kinds[:-1]) + " or " + kinds[-1])
    elif kind == "string_pattern_mismatch":
        text = f"expected {wanted}" if wanted else "the text does not have the field's format"
    elif kind in ("string_too_short", "too_short"):
        least = (first.get("ctx") or {}).get("min_length", 1)
        text = "expected non-empty text" if least == 1 else f"expected at least {least}"
    elif kind in ("string_too_long", "too_long"):
        most = (first.get("ctx") or {}).get("max_length")
        noun = "characters" if kind == "string_too_long" else "entries"
        text = f"expected at most {most} {noun}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        ctx = first.get("ctx") or {}
        sign = {"greater_than_equal": ">=", "greater_than": ">"}.get(
            kind, "<=" if "le" in ctx else "<"
        )
        bound = next(iter(ctx.values()), "")
        text = (
            f"expected a number {sign} {bound:g}"
            if isinstance(bound, int | float)
            else (f"expected a number {sign} {bound}")
        )
    elif kind == "literal_error":
        text = f"expected one of: {(first.get('ctx') or {}).get('expected', '')}"
    elif kind in ("value_error", "assertion_error"):
        text = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    elif kind in _KINDS:
        text = f"expected {_KINDS[kind]}" if kind != "extra_forbidden" else "there is no such field"
    else:
        text = str(first["msg"])
    if wanted and kind != "string_pattern_mismatch" and kind.endswith("_type"):
        text += f" ({wanted})"
    return f"{where}: {text}" if where and with_place else text


def _where(loc: tuple[Any, ...], annotation: Any) -> tuple[str, tuple[Any, ...]]:
    """The place of an error as written (``key 'view_seconds'``, ``[2].sku``) and the loc
    without pydantic's union-member and ``[key]`` markers."""
    parts: list[str] = []
    at: list[Any] = []
    key = False
    for part in loc:
        if part == "[key]":
            key = True
            continue
        if is_member(part):
            continue  # a union member's name, not a place
        at.append(part)
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    text = "".join(parts).lstrip(".")
    if key and at:
        # The key's type does not depend on which key it is: described as "[key]".
        return f"key {at[-1]!r}", tuple([*at[:-1], "[key]"])
    return text, tuple(at)


_MEMBER_NAMES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def is_member(part: Any) -> bool:
    """Whether a loc part names a union member (``int``, ``function-after[...]``)."""
    return isinstance(part, str) and (
        part in _MEMBER_NAMES or "[" in part or part.startswith(("function-", "constrained-"))
    )


def _description_at(annotation: Any, loc: Iterable[Any]) -> str:
    """The description of the type found at ``loc`` inside ``annotation`` ('' if none)."""
    current, description = _unwrap(annotation)
    for part in loc:
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if part == "[key]":
            if origin is not dict or not args:
                return ""
            current, description = _unwrap(args[0])
        elif origin is dict and len(args) == 2:
            current, description = _unwrap(args[1])
        elif origin in (list, tuple) and args and isinstance(part, int):
            current, description = _unwrap(args[0])
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = _field_named(current, part)
            if info is None:
                return ""
            current, description = _unwrap(info.rebuild_annotation())
            description = info.description or description
        else:
            return ""
    return description


def _field_named(model: type[BaseModel], key: Any) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias, info.validation_alias):
            return info
    return None


def _unwrap(annotation: Any) -> tuple[Any, str]:
    """The type under Annotated/Optional and the first description on the way."""
    description = ""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                if isinstance(item, FieldInfo) and item.description and not description:
                    description = item.description
            continue
        if origin is typing.Union or origin is types.UnionType:
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
        return annotation, description


def key_problem(key: str, target: Target) -> str | None:
    """Why ``key`` cannot be a key of the object ``target`` (``ext``), in words; None if it can."""
    bare, _ = _unwrap(target.annotation)
    args = typing.get_args(bare)
    if typing.get_origin(bare) is not dict or len(args) != 2:
        return None
    from connector.mapping.targets import describe

    key_target = describe(args[0])
    found = problem(key, key_target)
    if found is None:
        return None
    camel = _camel(key)
    return f"{found} — write {camel}" if camel != key and fits(camel, key_target) else found


def _camel(name: str) -> str:
    """``view_seconds`` → ``viewSeconds``, ``Page-Type`` → ``pageType``."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    if not words:
        return name
    first = words[0][0].lower() + words[0][1:]
    return first + "".join(w[0].upper() + w[1:] for w in words[1:])


def most_entries(target: Target) -> int | None:
    """The most keys the object ``target`` may have (``ext``: 50), None when unbounded."""
    annotation = target.annotation
    while typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            for constraint in [item, *getattr(item, "metadata", [])]:
                most = getattr(constraint, "max_length", None)
                if isinstance(most, int):
                    return most
    return None


def extra_problem(model: type[BaseModel], keys: Sequence[str]) -> str | None:
    """Why the extra attributes ``keys`` of an open model (``extra="allow"``: an order
    extension) are refused by its own rules (names, count), in words; None when they pass.

    The model's validator is run on the names with a text value each: what it says about
    the names is what it would say per record."""
    if not keys:
        return None
    try:
        model.model_validate({key: "x" for key in keys})
    except ValidationError as exc:
        for error in exc.errors():
            if not error["loc"] or error["loc"][0] in keys:
                return _expected([error], model, "")
    return None
