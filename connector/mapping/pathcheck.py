"""Hold a mapping's record paths against the shape of the records (a writer schema).

Pure: no I/O. ``check_uses(uses, shape)`` returns one :class:`PathProblem` per
expression that reads a field the schema does not have (with the closest real
path), or whose value cannot feed its target field without a transform. The
JMESPath AST is walked as far as the schema says something: a field of a
record, an element of an array, a value of a map; function results and
literals are not followed (``any``), so nothing is flagged that might exist.

``check_mapper`` locates the problems of a mapping's rules (a condition's field that
only another known version of the schema has is a warning naming it); ``check_input``
holds the paths against some records when there is no schema at all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError

from connector.mapping import fit
from connector.mapping.avro_shape import ANY, Shape, shape_of_values
from connector.mapping.mapper import Mapper
from connector.mapping.problems import locate
from connector.mapping.targets import Target
from connector.mapping.uses import PathUse

__all__ = ["PathProblem", "check_input", "check_mapper", "check_uses", "known_paths"]


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
    versions: Sequence[tuple[str, Shape]] = (),
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of the rules that apply to ``topic`` (None: all), located.

    ``rules`` names the rules to check instead (a topic pattern's, say). Every path
    that feeds a field must exist in ``shape``. A condition (``when``) may read a
    field that only another known version of the schema has (``versions``: each
    labelled, e.g. ``version 3 of subject clickstream-value``): it is null for these
    records, which may be meant (a rule for a field a later version adds), so that is
    a warning naming the version; a field no known version has is an error, with the
    closest real path — the condition could never hold.
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
        message = problem.message
        elsewhere = _found_in(use, versions) if use.field == "when" else None
        if elsewhere is not None:
            message += f"; {elsewhere} has it: null for records written with this version"
        text = locate(
            mapper.source,
            use.line,
            message,
            rule=use.rule,
            event=use.event,
            field=use.field or None,
        )
        (warnings if elsewhere is not None else errors).append(text)
    return errors, warnings


def _found_in(use: PathUse, versions: Sequence[tuple[str, Shape]]) -> str | None:
    """The label of the first other version in which ``use``'s path exists (None: none)."""
    for label, shape in versions:
        if not check_uses([replace(use, target=None)], shape):
            return label
    return None


def check_input(
    mapper: Mapper,
    records: Sequence[Any],
    topic: str,
    matched: Sequence[str | None],
) -> list[str]:
    """Paths that no input record has, located, each with the closest field one has.

    For ``map`` and ``test`` without a writer schema: the records are all there is, so
    a path is held against the keys they have (never their types: a few samples say
    little about a type). A rule's fields are held against the records it matched
    (``matched[i]`` names the rule record ``i`` went to; None: none), the defaults'
    against the records some emitting rule matched, the rules' conditions against
    every record; a rule no record reached is not checked.
    """
    emitting = {rule.name for rule in mapper.rules if not rule.skip}
    applying = {rule.name for rule in mapper.rules if rule.applies_to(topic)}
    warnings: list[str] = []
    shapes: dict[str, Shape] = {}

    def shape_for(key: str, chosen: list[Any]) -> Shape:
        if key not in shapes:
            shapes[key] = shape_of_values(chosen, "the input")
        return shapes[key]

    for use in mapper.path_uses:
        if use.rule is not None and use.rule not in applying:
            continue
        if use.rule is not None and use.field == "when" and use.event is None:
            key, chosen = "*", list(records)
        elif use.rule is None:
            key = "defaults"
            chosen = [r for r, m in zip(records, matched, strict=True) if m in emitting]
        else:
            key = f"rule {use.rule}"
            chosen = [r for r, m in zip(records, matched, strict=True) if m == use.rule]
        if not chosen:
            continue
        for problem in check_uses([replace(use, target=None)], shape_for(key, chosen)):
            text = locate(
                mapper.source,
                use.line,
                problem.message,
                rule=use.rule,
                event=use.event,
                field=use.field or None,
            )
            if text not in warnings:
                warnings.append(text)
    return warnings


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
    fix = _FIX.get(wanted, "add a transform")
    sample = _SAMPLES.get(shape.kind)
    if target.annotation is not None and sample is not None:
        # The field's own constraints decide: a long into a UTC date-time text needs
        # iso8601, into free text just string.
        found = fit.transform_for(sample, target, first=wanted)
        if found is not None:
            fix = f"add transform: {found}"
    described = f"{wanted}, {target.description}" if target.description else wanted
    return f"the field takes a {described}: {fix}"


#: A typical decoded value per kind, to try the usual transforms on.
_SAMPLES: dict[str, Any] = {
    "integer": 1764661530123,  # most integers fed to text fields are epoch milliseconds
    "number": 12.5,
    "boolean": True,
    "string": "12",
}
