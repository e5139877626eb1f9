"""JMESPath expressions, compiled once, with a fast path for the common shapes.

``jmespath.search`` walks a parsed AST through a visitor on every call, which
costs microseconds even for ``page.url``. Most mapping expressions are plain
field paths or ``path == 'LITERAL'`` conditions, so those AST shapes are turned
into small closures over ``dict.get``, as are multi-selects (``[a, b]``,
``{k: a}``), projections, filters and flatten built of them; anything else
(other functions, indexes, slices, pipes) runs through the compiled JMESPath
expression. The closures
reproduce JMESPath's semantics exactly (a property test checks they agree):
a field of a non-object is null, ``==`` never equates 0/1 with false/true,
and ``&&``/``||``/``!`` use JMESPath's notion of falsy.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Number
from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError, JMESPathTypeError

from connector.errors import InternalError

__all__ = [
    "Getter",
    "PathSyntaxError",
    "compile_path",
    "equals",
    "field_keys",
    "is_falsy",
    "is_literal",
    "literal_value",
]

Getter = Callable[[Any], Any]
"""A compiled expression: takes the current value (usually the record), returns a value."""


class PathSyntaxError(InternalError, ValueError):
    """The text is not a valid JMESPath expression."""


_NO_LITERAL = object()


def compile_path(expression: str, *, fast: bool = True) -> Getter:
    """Compile a JMESPath expression into a getter; fast closures where the shape allows."""
    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise PathSyntaxError(str(exc).replace("\n", " ")) from exc
    if fast:
        getter = _fast(cast("dict[str, Any]", compiled.parsed))
        if getter is not None:
            return getter
    search: Getter = compiled.search
    return search


def literal_value(expression: str) -> Any:
    """The constant of a JMESPath literal ('x' or `json`); a sentinel for other expressions.

    Lets the compiler fold ``'WEB'`` into a constant instead of evaluating it per record.
    """
    try:
        parsed = jmespath.compile(expression).parsed
    except JMESPathError:
        return _NO_LITERAL
    return parsed["value"] if parsed["type"] == "literal" else _NO_LITERAL


def is_literal(value: Any) -> bool:
    """True when :func:`literal_value` found a literal."""
    return value is not _NO_LITERAL


def field_keys(expression: str) -> tuple[str, ...] | None:
    """The keys of a plain field path (``a.b.c``), or None for any other expression."""
    try:
        node = cast("dict[str, Any]", jmespath.compile(expression).parsed)
    except JMESPathError:
        return None
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression" and all(c["type"] == "field" for c in node["children"]):
        return tuple(c["value"] for c in node["children"])
    return None


def is_falsy(value: Any) -> bool:
    """JMESPath falsiness: null, false, and empty strings, lists and objects (not 0)."""
    return value is None or value is False or value == "" or value == [] or value == {}


def _fast(node: dict[str, Any]) -> Getter | None:
    """A closure for the AST shapes we optimise, or None to fall back to JMESPath."""
    kind = node["type"]
    if kind == "field":
        return _field_getter((node["value"],))
    if kind == "subexpression":
        if all(child["type"] == "field" for child in node["children"]):
            return _field_getter(tuple(child["value"] for child in node["children"]))
        return _chain(node)
    if kind in ("current", "identity"):
        return _identity
    if kind in _SHAPES:
        return _SHAPES[kind](node)
    if kind == "literal":
        value = node["value"]
        return lambda _: value
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        return _comparator(node)
    if kind in ("and_expression", "or_expression"):
        left, right = (_fast(child) for child in node["children"])
        if left is None or right is None:
            return None
        return _and(left, right) if kind == "and_expression" else _or(left, right)
    if kind == "not_expression":
        inner = _fast(node["children"][0])
        return None if inner is None else _not(inner)
    if kind == "function_expression" and node["value"] in _STRING_FUNCTIONS:
        args = [_fast(child) for child in node["children"]]
        if len(args) != 2 or args[0] is None or args[1] is None:
            return None
        return _STRING_FUNCTIONS[node["value"]](args[0], args[1])
    return None


def _type_name(value: Any) -> str:
    # The names JMESPath uses in its type errors.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number" if _is_number(value) else "unknown"


def _contains(subject: Getter, search: Getter) -> Getter:
    def contains(value: Any) -> bool:
        haystack = subject(value)
        if not isinstance(haystack, str | list):
            raise JMESPathTypeError("contains", haystack, _type_name(haystack), ["array", "string"])
        return bool(search(value) in haystack)  # Python's `in`, as JMESPath does

    return contains


def _affix(name: str) -> Callable[[Getter, Getter], Getter]:
    def build(subject: Getter, affix: Getter) -> Getter:
        def check(value: Any) -> bool:
            text, part = subject(value), affix(value)
            for arg in (text, part):
                if not isinstance(arg, str):
                    raise JMESPathTypeError(name, arg, _type_name(arg), ["string"])
            return bool(text.startswith(part) if name == "starts_with" else text.endswith(part))

        return check

    return build


_STRING_FUNCTIONS: dict[str, Callable[[Getter, Getter], Getter]] = {
    "contains": _contains,
    "starts_with": _affix("starts_with"),
    "ends_with": _affix("ends_with"),
}


def _identity(value: Any) -> Any:
    return value


# -- list and object shapes: [a, b], {k: a}, a[*].b, a[?c].b, a[] (JMESPath's visitor,
# step by step, with the children compiled to closures once)


def _children(node: dict[str, Any]) -> list[Getter] | None:
    getters = [_fast(child) for child in node["children"]]
    return None if any(g is None for g in getters) else cast("list[Getter]", getters)


def _chain(node: dict[str, Any]) -> Getter | None:
    parts = _children(node)
    if parts is None:
        return None
    steps = tuple(parts)

    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return chain


def _select_list(node: dict[str, Any]) -> Getter | None:
    items = _children(node)
    if items is None:
        return None
    parts = tuple(items)

    def select(value: Any) -> Any:
        return None if value is None else [part(value) for part in parts]

    return select


def _select_dict(node: dict[str, Any]) -> Getter | None:
    pairs = []
    for pair in node["children"]:  # key_val_pair nodes
        getter = _fast(pair["children"][0])
        if getter is None:
            return None
        pairs.append((pair["value"], getter))
    fields = tuple(pairs)

    def select(value: Any) -> Any:
        return None if value is None else {key: get(value) for key, get in fields}

    return select


def _projection(node: dict[str, Any]) -> Getter | None:
    parts = _children(node)
    if parts is None:
        return None
    left, right = parts

    def project(value: Any) -> Any:
        base = left(value)
        if not isinstance(base, list):
            return None
        if right is _identity:
            return [element for element in base if element is not None]
        return [current for element in base if (current := right(element)) is not None]

    return project


def _filter_projection(node: dict[str, Any]) -> Getter | None:
    parts = _children(node)
    if parts is None:
        return None
    left, right, condition = parts

    def project(value: Any) -> Any:
        base = left(value)
        if not isinstance(base, list):
            return None
        return [
            current
            for element in base
            if not is_falsy(condition(element)) and (current := right(element)) is not None
        ]

    return project


def _flatten(node: dict[str, Any]) -> Getter | None:
    parts = _children(node)
    if parts is None:
        return None
    (inner,) = parts

    def flatten(value: Any) -> Any:
        base = inner(value)
        if not isinstance(base, list):
            return None
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    return flatten


_SHAPES: dict[str, Callable[[dict[str, Any]], Getter | None]] = {
    "multi_select_list": _select_list,
    "multi_select_dict": _select_dict,
    "projection": _projection,
    "filter_projection": _filter_projection,
    "flatten": _flatten,
}


def _field_getter(keys: tuple[str, ...]) -> Getter:
    # JMESPath's field access is `value.get(key)` with AttributeError meaning null; a
    # chain of .get() calls inside one try block is the same thing, minus the visitor.
    # A null on the way returns at once: raising AttributeError off None costs ~5x the
    # lookups, and absent optional parts (`page.utm` of most records) are the common case.
    if len(keys) == 1:
        (a,) = keys

        def get1(value: Any) -> Any:
            try:
                return value.get(a)
            except AttributeError:
                return None

        return get1
    if len(keys) == 2:
        a, b = keys

        def get2(value: Any) -> Any:
            try:
                value = value.get(a)
                return None if value is None else value.get(b)
            except AttributeError:
                return None

        return get2
    if len(keys) == 3:
        a, b, c = keys

        def get3(value: Any) -> Any:
            try:
                value = value.get(a)
                if value is None:
                    return None
                value = value.get(b)
                return None if value is None else value.get(c)
            except AttributeError:
                return None

        return get3

    def get_n(value: Any) -> Any:
        try:
            for key in keys:
                value = value.get(key)
                if value is None:
                    return None
        except AttributeError:
            return None
        return value

    return get_n


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    if kind is str or kind is bool or value is None:
        return False  # the common cases, without the slow ABC check below
    return isinstance(value, Number)


def equals(x: Any, y: Any) -> bool:
    """JMESPath equality."""
    # JMESPath: 0/1 never equal false/true, although Python says they do.
    if _is_number(x) and x in (0, 1):
        if isinstance(y, bool):
            return False
    elif _is_number(y) and y in (0, 1) and isinstance(x, bool):
        return False
    return bool(x == y)


def _comparator(node: dict[str, Any]) -> Getter | None:
    left, right = (_fast(child) for child in node["children"])
    if left is None or right is None:
        return None
    literal = node["children"][1]
    # The common `path == 'TEXT'` shape: a string literal can only equal a string, so a
    # plain == is exact and skips the number special cases.
    if literal["type"] == "literal" and isinstance(literal["value"], str):
        text = literal["value"]
        if node["value"] == "eq":
            return lambda value: left(value) == text
        return lambda value: left(value) != text
    if literal["type"] == "literal" and (
        literal["value"] is None or isinstance(literal["value"], bool)
    ):
        # JMESPath equality with null/true/false is identity (0 and 1 never equal a boolean).
        constant = literal["value"]
        if node["value"] == "eq":
            return lambda value: left(value) is constant
        return lambda value: left(value) is not constant
    if node["value"] == "eq":
        return lambda value: equals(left(value), right(value))
    return lambda value: not equals(left(value), right(value))


def _and(left: Getter, right: Getter) -> Getter:
    def both(value: Any) -> Any:
        first = left(value)
        return first if is_falsy(first) else right(value)

    return both


def _or(left: Getter, right: Getter) -> Getter:
    def either(value: Any) -> Any:
        first = left(value)
        return right(value) if is_falsy(first) else first

    return either


def _not(inner: Getter) -> Getter:
    def negate(value: Any) -> Any:
        result = inner(value)
        if _is_number(result) and result == 0:
            return False  # JMESPath: !0 is false (0 is truthy)
        return not result

    return negate
