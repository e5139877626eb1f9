"""Hold a mapping's record paths against the shape of the records (a writer schema).

Pure: no I/O. ``check_uses(uses, shape)`` returns one :class:`PathProblem` per
expression that reads a field the schema does not have (with the closest real
path), or whose value cannot feed its target field without a transform. The
JMESPath AST is walked as far as the schema says something: a field of a
record, an element of an array, a value of a map; function results and
literals are not followed (``any``), so nothing is flagged that might exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError

from connector.mapping.avro_shape import ANY, Shape
from connector.mapping.mapper import Mapper
from connector.mapping.problems import locate
from connector.mapping.targets import Target
from connector.mapping.uses import PathUse

__all__ = ["PathProblem", "check_mapper", "check_uses", "known_paths"]


@dataclass(frozen=True)
class PathProblem:
    """A path that cannot exist, or a type that cannot feed its field."""

    use: PathUse
    message: str


class _Missing(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_uses(uses: Iterable[PathUse], root: Shape, schema_name: str = "") -> list[PathProblem]:
    """Every problem of ``uses`` against records of shape ``root``, once per line and text."""
    problems: list[PathProblem] = []
    seen: set[tuple[int, str, str]] = set()
    name = schema_name or root.name or "the schema"
    for use in uses:
        key = (use.line, use.field, use.text)
        if key in seen:
            continue  # a default field is compiled once per event; report it once
        seen.add(key)
        try:
            scope = _scope(use.scope, root, name)
            shape = _resolve_text(use.text, scope, root, scope.name if use.scope else name)
        except _Missing as missing:
            problems.append(PathProblem(use, missing.message))
            continue
        if use.target is not None:
            reason = _cannot_feed(shape, use.target)
            if reason:
                problems.append(PathProblem(use, f"{use.text!r} is {shape.describe()}: {reason}"))
    return problems


def check_mapper(
    mapper: Mapper,
    shape: Shape,
    topic: str | None = None,
    schema_name: str = "",
    *,
    rules: Iterable[str] | None = None,
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of the rules that apply to ``topic`` (None: all), located.

    ``rules`` names the rules to check instead (a topic pattern's, say). A
    condition (``when``) reading a field the schema lacks is a warning, not an
    error: it is null for these records, which may be meant (a rule for a field
    a later schema version adds); every path that feeds a field is an error.
    """
    if rules is not None:
        names = set(rules)
    else:
        names = {rule.name for rule in mapper.rules if topic is None or rule.applies_to(topic)}
    selected = [use for use in mapper.path_uses if use.rule is None or use.rule in names]
    errors: list[str] = []
    warnings: list[str] = []
    for problem in check_uses(selected, shape, schema_name):
        use = problem.use
        text = locate(
            mapper.source,
            use.line,
            problem.message,
            rule=use.rule,
            event=use.event,
            field=use.field or None,
        )
        (warnings if use.field == "when" else errors).append(text)
    return errors, warnings


def known_paths(shape: Shape, depth: int = 6) -> list[str]:
    """Every dotted path into records of ``shape`` (``items[].sku`` for array elements)."""
    out: list[str] = []

    def walk(node: Shape, prefix: str, level: int) -> None:
        if level > depth:
            return
        for record in node.records():
            for key, child in record.fields.items():
                path = f"{prefix}.{key}" if prefix else key
                out.append(path)
                walk(child, path, level + 1)
        if node.kind == "array" and node.item is not None:
            walk(node.item, f"{prefix}[]", level + 1)

    walk(shape, "", 0)
    return list(dict.fromkeys(out))


def _scope(scope: tuple[str, ...], root: Shape, name: str) -> Shape:
    current = root
    for text in scope:
        shape = _resolve_text(text, current, root, name)
        if shape.kind == "any":
            return ANY
        if shape.kind != "array" or shape.item is None:
            raise _Missing(f"each {text!r} is {shape.describe()}, not a list")
        current = shape.item
    return current


def _resolve_text(text: str, scope: Shape, root: Shape, name: str) -> Shape:
    from_root = text == "$" or text.startswith("$.")
    expression = text[2:] if text.startswith("$.") else ("@" if text == "$" else text)
    start = root if from_root else scope
    try:
        tree = cast("dict[str, Any]", jmespath.compile(expression).parsed)
    except JMESPathError:
        return ANY  # the compiler already reported the syntax
    walker = _Walker(text, root if from_root else scope, name)
    return walker.resolve(tree, start)


class _Walker:
    def __init__(self, text: str, start: Shape, name: str) -> None:
        self.text = text
        self.start = start
        self.name = name

    def resolve(self, node: dict[str, Any], shape: Shape, prefix: str = "") -> Shape:
        kind = node["type"]
        children = node.get("children", [])
        if kind == "field":
            return self._field(shape, node["value"], prefix)
        if kind == "subexpression":
            for child in children:
                shape = self.resolve(child, shape, prefix)
                prefix = _joined(prefix, child)
            return shape
        if kind == "index_expression":
            left = self.resolve(children[0], shape, prefix)
            return self._element(left, _joined(prefix, children[0]))
        if kind in ("index", "slice"):
            return self._element(shape, prefix) if kind == "index" else shape
        if kind == "flatten":
            left = self.resolve(children[0], shape, prefix)
            return left if left.kind in ("array", "any") else Shape("array", item=ANY)
        if kind in ("projection", "filter_projection"):
            left = self.resolve(children[0], shape, prefix)
            item = left.item if left.kind == "array" and left.item is not None else ANY
            if left.kind not in ("array", "any"):
                raise _Missing(f"{_joined(prefix, children[0])!r} is {left.describe()}, not a list")
            inner = _joined(prefix, children[0]) + "[]"
            if kind == "filter_projection":
                self.resolve(children[2], item, inner)
            return Shape("array", item=self.resolve(children[1], item, inner))
        if kind == "value_projection":
            left = self.resolve(children[0], shape, prefix)
            values = left.item if left.kind == "map" and left.item is not None else ANY
            self.resolve(children[1], values, prefix)
            return ANY
        if kind == "pipe":
            return self.resolve(children[1], self.resolve(children[0], shape, prefix), prefix)
        if kind == "current":
            return shape
        if kind == "or_expression":
            left, right = (self.resolve(c, shape, prefix) for c in children)
            return left if left.kind == right.kind else ANY
        if kind in ("comparator", "and_expression", "not_expression"):
            for child in children:
                self.resolve(child, shape, prefix)
            return Shape("boolean")
        if kind == "expref":
            return ANY  # evaluated per element by a function (sort_by, ...): not followed
        for child in children:  # functions, multi-selects, key/value pairs
            if isinstance(child, dict):
                self.resolve(child, shape, prefix)
        return ANY

    def _field(self, shape: Shape, key: str, prefix: str) -> Shape:
        if shape.kind == "map":
            return shape.item or ANY
        if shape.kind == "any":
            return ANY
        records = shape.records()
        for record in records:
            if key in record.fields:
                found = record.fields[key]
                if shape.optional or len(records) < len(shape.options or records):
                    return Shape(**{**found.__dict__, "optional": True})
                return found
        if shape.kind == "union" and any(o.kind in ("map", "any") for o in shape.options):
            return ANY
        if not records:
            hint = " (a list: write [].field or [0].field)" if shape.kind == "array" else ""
            raise _Missing(f"path {self.text!r}: {prefix!r} is {shape.describe()}{hint}")
        names = [k for r in records for k in r.fields]
        where = f"{prefix!r}" if prefix else self.name
        raise _Missing(
            f"path {self.text!r}: {where} has no field {key!r}{self._suggest(key, names, prefix)}"
        )

    def _element(self, shape: Shape, prefix: str) -> Shape:
        if shape.kind == "array" and shape.item is not None:
            return shape.item
        if shape.kind == "any":
            return ANY
        raise _Missing(f"path {self.text!r}: {prefix!r} is {shape.describe()}, not a list")

    def _suggest(self, key: str, names: list[str], prefix: str) -> str:
        everywhere = known_paths(self.start)
        # The very field, under another parent (x vs payload.x), is the likeliest fix.
        same = [p for p in everywhere if p.rpartition(".")[2] == key]
        if same:
            return f" (did you mean {same[0]!r}?)"
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {(prefix + '.' if prefix else '') + close[0]!r}?)"
        wanted = f"{prefix}.{key}" if prefix else key
        close = difflib.get_close_matches(wanted, everywhere, n=1, cutoff=0.6)
        return f" (did you mean {close[0]!r}?)" if close else ""


def _joined(prefix: str, node: dict[str, Any]) -> str:
    """The written path of a field / index node, appended to ``prefix`` (for messages)."""
    kind = node["type"]
    if kind == "field":
        return f"{prefix}.{node['value']}" if prefix else str(node["value"])
    if kind == "index":
        return f"{prefix}[{node['value']}]"
    if kind == "index_expression":
        return _joined(_joined(prefix, node["children"][0]), node["children"][1])
    if kind == "subexpression":
        for child in node["children"]:
            prefix = _joined(prefix, child)
        return prefix
    return prefix


_FITS: dict[str, frozenset[str]] = {
    "string": frozenset({"string", "date", "datetime", "time", "bytes"}),
    "integer": frozenset({"integer"}),
    "number": frozenset({"integer", "number"}),
    "boolean": frozenset({"boolean"}),
    "datetime": frozenset({"datetime", "string"}),
    "date": frozenset({"date", "string"}),
}
_FIX: dict[str, str] = {
    "string": "add transform: string",
    "integer": "add transform: integer",
    "number": "add transform: number",
    "boolean": "map it with a lookup transform",
    "datetime": "add transform: {iso8601: {unit: ms}} (or the unit of the number)",
    "date": "add transform: date",
}


def _cannot_feed(shape: Shape, target: Target) -> str:
    """Why a value of ``shape`` cannot be the value of ``target`` ('' when it can)."""
    if shape.kind in ("any", "null"):
        return ""
    if shape.kind == "union":
        reasons = [_cannot_feed(option, target) for option in shape.options]
        return "" if any(not r for r in reasons) else reasons[0]
    if target.kind == "model" or target.kind == "dict":
        ok = shape.kind in ("record", "map")
        return "" if ok else f"the field is an {target.describe()}: map it field by field"
    if target.kind == "list":
        return "" if shape.kind == "array" else f"the field is a {target.describe()}"
    if target.kind != "scalar":
        return ""
    if shape.kind in ("record", "map", "array"):
        return "the field is a single value: pick one field of it (a.b)"
    if shape.symbols and target.allowed is not None:
        extra = sorted(set(shape.symbols) - {str(a) for a in target.allowed})
        if extra:
            allowed = ", ".join(sorted(map(str, target.allowed)))
            return (
                f"symbol(s) {', '.join(extra)} are not allowed values ({allowed}): "
                "add transform: {lookup: {table: {...}}}"
            )
    wanted = target.scalar
    if wanted is None or shape.kind in _FITS.get(wanted, frozenset({shape.kind})):
        return ""
    return f"the field takes a {wanted}: {_FIX.get(wanted, 'add a transform')}"
