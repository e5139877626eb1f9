"""Leaf field expressions — paths, constants, templates — and the types fields share.

An evaluator is ``(scope, root) -> value``: ``scope`` is what plain paths read
(the record, or the current element inside ``each``), ``root`` is the whole
record (reached with ``$.path``). Evaluators return JSON-safe values or None.
Compile problems raise :class:`SpecError` with the line; runtime problems raise
:class:`FieldFailure` with the field path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from jmespath.exceptions import JMESPathError

from connector.errors import InternalError
from connector.mapping import fit, paths, uses
from connector.mapping.json_values import json_safe
from connector.mapping.targets import Target
from connector.mapping.transforms import (
    TRANSFORMS,
    Transform,
    TransformArgError,
    build_transform,
)
from connector.yaml_lines import YNode

__all__ = [
    "PRIMITIVES",
    "RUNTIME_ERRORS",
    "Compiled",
    "Evaluator",
    "FieldFailure",
    "SpecError",
    "SpecErrors",
    "check_allowed",
    "collect",
    "constant",
    "entries_of",
    "expression",
    "missing_hint",
    "template",
]

Evaluator = Callable[[Any, Any], Any]

PRIMITIVES = frozenset({str, int, float, bool, type(None)})
RUNTIME_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError, JMESPathError)
"""What evaluating a field may raise on bad record data; never escapes the mapper."""


class SpecError(InternalError):
    """A field expression is invalid; ``line`` and ``field`` say where."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.field = field
        self.message = message


class SpecErrors(InternalError):
    """Several independent SpecErrors of one object, all reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def collect(errors: list[SpecError], exc: SpecError | SpecErrors) -> None:
    """Add one SpecError or all of a SpecErrors to ``errors``."""
    errors.extend(exc.errors if isinstance(exc, SpecErrors) else [exc])


class FieldFailure(InternalError):
    """A field could not be computed for this record."""

    def __init__(self, path: list[str], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    @property
    def field(self) -> str:
        """The failing field's dotted path (``order.items[0].sku``), for the dead letter."""
        return "".join(p if p.startswith("[") else f".{p}" for p in self.path).lstrip(".")


@dataclass(frozen=True)
class Compiled:
    """An evaluator plus facts the compiler checks (source text, constant value)."""

    evaluate: Evaluator
    source: str
    constant: Any = None
    is_constant: bool = False
    #: A plain field path (``evaluate`` is exactly its ``dict.get`` chain), from the root or not.
    path: tuple[str, ...] | None = None
    from_root: bool = False
    #: ``(source, transforms, default)`` when ``evaluate`` is ``modifiers.pipeline`` of them.
    pipe: tuple[Compiled, tuple[Transform, ...], Any] | None = None


def missing_hint(source: str, scope: Any, root: Any) -> str:
    """`` (the record has 'email')`` when a plain path's last key is absent but a close one exists.

    Only on the failure path: the record a required field could not be read from.
    """
    from_root = source.startswith("$.")
    keys = paths.field_keys(source[2:] if from_root else source)
    if not keys:
        return ""
    parent = root if from_root else scope
    for key in keys[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or keys[-1] in parent:
        return ""
    close = difflib.get_close_matches(keys[-1], [str(k) for k in parent], n=1, cutoff=0.6)
    prefix = ".".join(keys[:-1])
    return f" (the record has {(prefix + '.' if prefix else '') + close[0]!r})" if close else ""


def entries_of(node: YNode) -> list[tuple[str, YNode, int]]:
    """A mapping node's ``(key, value node, key line)`` triples."""
    return [(key, child, node.key_lines.get(key, child.line)) for key, child in node.items()]


# ---------------------------------------------------------------------------
# Scalars: expressions and constants

_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expression(
    text: str, node: YNode, target: Target, where: str, *, feeds: Target | None = None
) -> Compiled:
    """A string expression: a JMESPath path (``$.`` = from the root) or a literal.

    ``feeds`` is the field the value goes to when that differs from ``target``
    (a ``{path: ...}`` without transforms): the path checker compares types with it.
    """
    literal = paths.literal_value(text)
    if paths.is_literal(literal):
        return constant(literal, node, target, where)
    if target.allowed and _BARE_WORD.fullmatch(text) and text in {str(a) for a in target.allowed}:
        # `channel: WEB` reads the record's field "WEB", which is almost never meant.
        raise SpecError(
            node.line,
            where,
            f"{text!r} is read as a path into the record; for the constant write {{const: {text}}}",
        )
    from_root = text == "$" or text.startswith("$.")
    expression = text[2:] if text.startswith("$.") else ("@" if text == "$" else text)
    try:
        getter = paths.compile_path(expression)
    except paths.PathSyntaxError as exc:
        raise SpecError(node.line, where, f"invalid expression {text!r}: {exc}") from exc
    uses.record(text, node.line, where, feeds or target)

    keys = paths.field_keys(expression)
    if keys is not None:
        return Compiled(_plain_path(keys, from_root, getter), text, path=keys, from_root=from_root)
    if from_root:

        def evaluate(scope: Any, root: Any) -> Any:
            value = getter(root)
            return value if type(value) in PRIMITIVES else json_safe(value)
    else:

        def evaluate(scope: Any, root: Any) -> Any:
            value = getter(scope)
            return value if type(value) in PRIMITIVES else json_safe(value)

    return Compiled(evaluate, text)


def _plain_path(keys: tuple[str, ...], from_root: bool, getter: paths.Getter) -> Evaluator:
    # The hot path of every mapping: a few dict lookups, fused with the JSON-safe check so
    # a field costs a single call (same semantics as paths.compile_path, null-safe the same
    # way: a null on the way returns at once instead of raising AttributeError off None).
    if len(keys) == 1:
        (a,) = keys

        def get1(scope: Any, root: Any) -> Any:
            try:
                value = (root if from_root else scope).get(a)
            except AttributeError:
                return None
            return value if type(value) in PRIMITIVES else json_safe(value)

        return get1
    if len(keys) == 2:
        a, b = keys

        def get2(scope: Any, root: Any) -> Any:
            try:
                value = (root if from_root else scope).get(a)
                if value is None:
                    return None
                value = value.get(b)
            except AttributeError:
                return None
            return value if type(value) in PRIMITIVES else json_safe(value)

        return get2
    if len(keys) == 3:
        a, b, c = keys

        def get3(scope: Any, root: Any) -> Any:
            try:
                value = (root if from_root else scope).get(a)
                if value is None:
                    return None
                value = value.get(b)
                if value is None:
                    return None
                value = value.get(c)
            except AttributeError:
                return None
            return value if type(value) in PRIMITIVES else json_safe(value)

        return get3

    def get_n(scope: Any, root: Any) -> Any:
        value = getter(root if from_root else scope)
        return value if type(value) in PRIMITIVES else json_safe(value)

    return get_n


def constant(value: Any, node: YNode, target: Target, where: str) -> Compiled:
    """A constant, made JSON-safe once and checked against everything the field demands
    (type, pattern, enum, bounds: ``connector.mapping.fit``)."""
    try:
        safe = json_safe(value)
    except (TypeError, ValueError) as exc:
        raise SpecError(node.line, where, f"constant {value!r}: {exc}") from exc
    check_allowed(safe, target, node, where)
    return Compiled(lambda scope, root: safe, f"constant {safe!r}", safe, True)


def check_allowed(value: Any, target: Target, node: YNode, where: str, what: str = "") -> None:
    """SpecError when the known ``value`` cannot be ``target``'s value (``what`` prefixes
    the message: ``lookup value``)."""
    found = fit.problem(value, target)
    if found is not None:
        raise SpecError(node.line, where, f"{what} {found}" if what else found)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


_TRANSFORM_STEP = re.compile(r"\s*([a-z_0-9]+)\s*(?::(.*))?", re.DOTALL)


def _placeholder_transforms(
    text: str, child: YNode, where: str
) -> tuple[str, tuple[Transform, ...]]:
    """``{expr | upper | truncate: 8}``: the expression, and the transforms after it.

    A ``|`` step whose name is a transform is one (arguments after ``:``, in
    YAML); anything else stays a JMESPath pipe.
    """
    steps = text.split("|")
    transforms: list[Transform] = []
    while len(steps) > 1:
        match = _TRANSFORM_STEP.fullmatch(steps[-1])
        if match is None or match.group(1) not in TRANSFORMS:
            break
        name, arg_text = match.group(1), match.group(2)
        try:
            args = yaml.safe_load(arg_text) if arg_text is not None else None
            transforms.insert(0, build_transform(name, args))
        except (TransformArgError, yaml.YAMLError) as exc:
            raise SpecError(child.line, where, f"template {{{text}}}: {exc}") from exc
        steps.pop()
    return "|".join(steps).strip(), tuple(transforms)


def template(child: YNode, where: str) -> Compiled:
    """``{template: 'text {path} text'}``: null when any placeholder is null.

    A placeholder may end in transforms: ``{page_url | lower | truncate: 40}``.
    """
    if not child.is_scalar or not isinstance(child.value, str):
        raise SpecError(child.line, where, "template must be a string like 'order-{payload.id}'")
    text: str = child.value
    parts: list[str | tuple[paths.Getter, bool, tuple[Transform, ...]]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
            continue
        expression = match.group(1).strip()
        if not expression:
            raise SpecError(child.line, where, "empty {} in template (write {{ for a brace)")
        expression, transforms = _placeholder_transforms(expression, child, where)
        from_root = expression.startswith("$.")
        try:
            getter = paths.compile_path(expression[2:] if from_root else expression)
            parts.append((getter, from_root, transforms))
            uses.record(expression, child.line, where, None)
        except paths.PathSyntaxError as exc:
            raise SpecError(child.line, where, f"template {{{expression}}}: {exc}") from exc
    rest = text[position:]
    if "{" in rest or "}" in rest:
        raise SpecError(child.line, where, "unbalanced brace in template (write {{ or }})")
    parts.append(rest)
    pieces = tuple(p for p in parts if p != "")
    to_text = build_transform("string", None)

    def render(scope: Any, root: Any) -> str | None:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            getter, from_root, transforms = piece
            value = getter(root if from_root else scope)
            for transform in transforms:
                if value is None:
                    break
                value = transform(value)
            if value is None:
                return None  # a missing part makes the whole value missing
            out.append(value if type(value) is str else to_text(value))
        return "".join(out)

    return Compiled(render, f"template {text!r}")
