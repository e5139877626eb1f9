"""Compile field expressions (the values of ``fields:``) into evaluators.

Checks each against the target field's shape (object, list, enum) and builds
nested objects, lists, ``each`` list mappings, coalesce and transform
pipelines on top of the leaf expressions in :mod:`connector.mapping.expressions`.
A null result leaves the field out; a null required field is a FieldFailure,
which the mapper turns into a MappingError naming the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from connector.mapping import fit, paths, uses
from connector.mapping.expressions import (
    RUNTIME_ERRORS,
    Compiled,
    Evaluator,
    FieldFailure,
    SpecError,
    SpecErrors,
    check_allowed,
    collect,
    constant,
    entries_of,
    expression,
    template,
)
from connector.mapping.modifiers import compile_transforms, pipeline
from connector.mapping.objects import object_builder
from connector.mapping.problems import suggest
from connector.mapping.targets import Target, accepts_extra, model_fields
from connector.yaml_lines import YNode

__all__ = [
    "BROWSER_ID_PLACEHOLDER",
    "RUNTIME_ERRORS",
    "Evaluator",
    "FieldFailure",
    "SpecError",
    "SpecErrors",
    "compile_object",
    "compile_value",
    "entries_of",
]

SOURCES = ("path", "const", "coalesce", "template", "object", "list", "each", "browser_id_for")
MODIFIERS = ("transform", "default")
SPEC_KEYS = frozenset((*SOURCES, *MODIFIERS, "value"))

#: ``browser_id: {browser_id_for: EXPR}`` puts this prefix plus the visitor id in the
#: payload; the sender swaps it for the CDP browser id of that visitor before posting
#: (``connector.delivery.browser_ids``). NUL never occurs in a real browser id.
BROWSER_ID_PLACEHOLDER = "\x00browser_id_for:"

# ---------------------------------------------------------------------------
# Entry points


def compile_value(node: YNode, target: Target, where: str) -> Compiled:
    """Compile one field expression against the shape its target field expects."""
    if node.is_scalar:
        value = node.value
        if value is None:
            raise SpecError(node.line, where, "null is not an expression (leave the field out)")
        if isinstance(value, str):
            return expression(value, node, target, where)
        return constant(value, node, target, where)
    if node.is_seq:
        raise SpecError(
            node.line,
            where,
            "a bare list is ambiguous: write {const: [...]} for a constant list, or "
            "{list: [...]} to build it item by item",
        )
    keys = set(node.value)
    if keys & SPEC_KEYS:
        return _spec(node, target, where)
    if target.kind in ("model", "dict", "any"):
        return compile_object(entries_of(node), node, target, where)
    raise SpecError(
        node.line,
        where,
        f"unknown key(s) {sorted(keys)}: a field is computed with one of "
        f"{', '.join(SOURCES)} (plus transform, default)",
    )


def compile_object(
    entries: list[tuple[str, YNode, int]],
    node: YNode,
    target: Target,
    where: str,
    *,
    overrides: Mapping[str, Target] | None = None,
) -> Compiled:
    """Compile ``key: expression`` pairs into an evaluator building one object.

    For a model target every key must be a field of the model and every
    required field must have an expression. ``overrides`` narrow what some
    fields take (by wire key: the tenant's points of sale for ``pos``).
    """
    if target.kind not in ("model", "dict", "any"):
        raise SpecError(
            node.line, where, f"an object is given but the field is a {target.describe()}"
        )
    fields = model_fields(target.model) if target.kind == "model" and target.model else None
    open_model = target.model is not None and accepts_extra(target.model)
    compiled: list[tuple[str, Compiled, bool]] = []
    seen: set[str] = set()
    errors: list[SpecError] = []  # every field's problem, not just the first
    extras: list[str] = []
    for key, child, line in entries:
        sub = f"{where}.{key}" if where else key
        if fields is not None and key not in fields and not open_model:
            assert target.model is not None  # noqa: S101 - fields come from the model
            owner = target.model.__name__
            known = sorted({f.key for f in fields.values()})
            hint = suggest(key, known) or misplaced(key, target.model)
            errors.append(SpecError(line, sub, f"{owner} has no field {key!r}{hint}"))
            continue
        if target.kind == "dict" and target.annotation is not None:
            wrong = fit.key_problem(key, target)
            if wrong is not None:
                errors.append(SpecError(line, sub, f"attribute name {wrong}"))
                continue
        if child.is_scalar and child.value is None:
            continue  # an explicit null leaves the field out (e.g. overriding a default)
        field = fields.get(key) if fields is not None else None
        if fields is not None and field is None:
            extras.append(key)
        wire = field.key if field is not None else key
        seen.add(wire)  # a field with a bad expression is not also "missing"
        if field is not None:
            value_target = (overrides or {}).get(field.key, field.target)
        elif target.kind == "dict" and target.item is not None:
            value_target = target.item  # ext: each value one of the allowed kinds
        else:
            value_target = Target("any")
        try:
            value = compile_value(child, value_target, sub)
        except (SpecError, SpecErrors) as exc:
            if open_model and field is not None and isinstance(exc, SpecError):
                # A declared field of an object that takes free attributes: a name the
                # attributes cannot have (an order extension's name and key).
                assert fields is not None and target.model is not None  # noqa: S101
                declared = ", ".join(sorted({f.key for f in fields.values()}))
                exc = SpecError(
                    exc.line,
                    exc.field,
                    f"{exc.message} ({declared} are reserved in {target.model.__name__}: "
                    "give the attribute another name)",
                )
            collect(errors, exc)
            continue
        compiled.append((wire, value, bool(field and field.required)))
    if target.kind == "dict" and target.annotation is not None:
        most = fit.most_entries(target)
        if most is not None and len(entries) > most:
            errors.append(
                SpecError(
                    node.line,
                    where,
                    f"{len(entries)} attributes: at most {most} are allowed "
                    "(put what belongs together in fewer attributes)",
                )
            )
    if open_model and extras and target.model is not None:
        wrong = fit.extra_problem(target.model, extras)
        if wrong is not None:
            errors.append(SpecError(node.line, where, wrong))
    if fields is not None:
        missing = sorted({f.key for f in fields.values() if f.required} - seen - {"type"})
        if missing:
            errors.append(
                SpecError(
                    node.line,
                    where or (missing[0]),
                    f"required field(s) {', '.join(missing)} have no expression",
                )
            )
    if errors:
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    return Compiled(object_builder(tuple(compiled)), "object")


def misplaced(key: str, model: type[BaseModel]) -> str:
    """Where a key that is not a field of ``model`` belongs, as a hint ('' if unknown):
    a field of one of its nested objects (``order.referenceId``), or an ``ext`` attribute."""
    fields = model_fields(model)
    for entry in {id(f): f for f in fields.values()}.values():
        nested = entry.target
        if nested.kind == "list" and nested.item is not None:
            nested = nested.item
        if (
            nested.kind == "model"
            and nested.model is not None
            and key in model_fields(nested.model)
        ):
            return f" (a field of {entry.key}: put it under {entry.key}:)"
    ext = fields.get("ext")
    if ext is not None and ext.target.kind == "dict" and fit.key_problem(key, ext.target) is None:
        return " (an ext attribute? put it under ext:)"
    return ""


# ---------------------------------------------------------------------------
# Mapping specs: {path|const|coalesce|template|object|list|each, transform, default}


def _spec(node: YNode, target: Target, where: str) -> Compiled:
    keys = list(node.value)
    unknown = [k for k in keys if k not in SPEC_KEYS]
    if unknown:
        raise SpecError(
            node.key_lines[unknown[0]],
            where,
            f"unknown key {unknown[0]!r}{suggest(unknown[0], SPEC_KEYS)}",
        )
    sources = [k for k in keys if k in SOURCES]
    if "each" in sources and "object" in sources:
        sources.remove("object")  # each + object: map every element to an object
    if len(sources) != 1:
        found = " and ".join(sources) if sources else "none"
        raise SpecError(
            node.line, where, f"give exactly one of {', '.join(SOURCES)} (found {found})"
        )
    kind = sources[0]
    if "value" in node.value and kind != "each":
        raise SpecError(node.key_lines["value"], where, "'value' only goes with 'each'")
    child = node.value[kind]
    if "transform" in node.value:
        # The source feeds the transforms, not the field: a value is held against the
        # field after them (a constant below, a lookup's outputs in compile_transforms).
        source_target = Target("any") if kind in _SCALAR_SOURCES else target
        with uses.untyped():
            base = _SOURCE_COMPILERS[kind](node, child, source_target, where)
    else:
        base = _SOURCE_COMPILERS[kind](node, child, target, where)
    transforms = compile_transforms(node.get("transform"), target, where)
    default_node = node.get("default")
    if not transforms and default_node is None:
        return base
    default = None
    if default_node is not None:
        default = constant(default_node.to_python(), default_node, target, where).constant
    if base.is_constant and not transforms:
        return (
            base
            if base.constant is not None
            else Compiled(lambda scope, root: default, base.source, default, True)
        )
    steps = tuple(transforms)
    evaluate = pipeline(base.evaluate, steps, default)
    if base.is_constant:
        return _folded(evaluate, base, node, target, where)
    return Compiled(evaluate, base.source, pipe=(base, steps, default))


#: Sources whose value is a single value (not an object or list built for the field).
_SCALAR_SOURCES = frozenset({"const", "path", "coalesce", "template"})


def _folded(
    evaluate: Evaluator, base: Compiled, node: YNode, target: Target, where: str
) -> Compiled:
    """A constant through its transforms, computed once now and held against the field."""
    try:
        value = evaluate(None, None)
    except RUNTIME_ERRORS as exc:
        raise SpecError(node.line, where, f"{base.source}: transform failed: {exc}") from exc
    check_allowed(value, target, node, where)
    return Compiled(lambda scope, root: value, f"constant {value!r}", value, True)


def _src_path(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    if not (child.is_scalar and isinstance(child.value, str) and child.value):
        raise SpecError(child.line, where, "path must be a JMESPath expression string")
    plain = spec.get("transform") is None  # a transform may change the type: not compared
    return expression(child.value, child, Target("any"), where, feeds=target if plain else None)


def _src_const(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    return constant(child.to_python(), child, target, where)


def _src_coalesce(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    if not child.is_seq or len(child.value) < 2:
        raise SpecError(child.line, where, "coalesce takes a list of two or more expressions")
    options = tuple(compile_value(item, target, where).evaluate for item in child.value)

    def first(scope: Any, root: Any) -> Any:
        for option in options:
            value = option(scope, root)
            if value is not None:
                return value
        return None

    sources = ", ".join(
        str(item.value) if item.is_scalar else f"line {item.line}" for item in child.value
    )
    return Compiled(first, f"coalesce({sources})")


def _src_object(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    if not child.is_map:
        raise SpecError(child.line, where, "object takes a mapping of field: expression")
    return compile_object(entries_of(child), child, target, where)


def _src_list(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    if not child.is_seq:
        raise SpecError(child.line, where, "list takes a list of expressions, one per item")
    item_target = _item_target(target, child, where)
    compiled: list[Evaluator] = []
    errors: list[SpecError] = []  # every item's problems, not just the first item's
    for index, item in enumerate(child.value):
        try:
            compiled.append(compile_value(item, item_target, f"{where}[{index}]").evaluate)
        except (SpecError, SpecErrors) as exc:
            collect(errors, exc)
    if errors:
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    items = tuple(compiled)

    def build(scope: Any, root: Any) -> list[Any] | None:
        out = []
        for index, item in enumerate(items):
            try:
                value = item(scope, root)
            except FieldFailure as failure:
                failure.path.insert(0, f"[{index}]")
                raise
            if value is not None and value != {}:
                out.append(value)  # an item whose sources are all missing is left out
        return out or None

    return Compiled(build, "list")


def _src_each(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    if not (child.is_scalar and isinstance(child.value, str) and child.value):
        raise SpecError(child.line, where, "each takes the path of a list in the record")
    item_target = _item_target(target, child, where)
    obj, value = spec.get("object"), spec.get("value")
    if (obj is None) == (value is None):
        raise SpecError(
            spec.line,
            where,
            "each needs exactly one of: object (an object per "
            "element) or value (an expression per element)",
        )
    sub = f"{where}[]"
    source_text = child.value
    uses.record(source_text, child.line, where, Target("list", item=Target("any")))
    with uses.scoped(source_text):
        if obj is not None:
            element = _src_object(spec, obj, item_target, sub).evaluate
        else:
            assert value is not None  # noqa: S101 - checked just above; narrows for mypy
            element = compile_value(value, item_target, sub).evaluate
    from_root = source_text.startswith("$.")
    try:
        getter = paths.compile_path(source_text[2:] if from_root else source_text)
    except paths.PathSyntaxError as exc:
        raise SpecError(child.line, where, f"invalid expression {source_text!r}: {exc}") from exc

    def build(scope: Any, root: Any) -> list[Any] | None:
        elements = getter(root if from_root else scope)
        if elements is None:
            return None
        if not isinstance(elements, list | tuple):
            raise FieldFailure([], f"{source_text} is a {type(elements).__name__}, not a list")
        out = []
        for index, item in enumerate(elements):
            try:
                mapped = element(item, root)
            except FieldFailure as failure:
                failure.path.insert(0, f"[{index}]")
                raise
            except RUNTIME_ERRORS as exc:
                raise FieldFailure([f"[{index}]"], str(exc)) from exc
            if mapped is not None:
                out.append(mapped)
        return out

    return Compiled(build, f"each {source_text}")


def _item_target(target: Target, node: YNode, where: str) -> Target:
    if target.kind == "list" and target.item is not None:
        return target.item
    if target.kind == "any":
        return Target("any")
    raise SpecError(node.line, where, f"a list is built but the field is a {target.describe()}")


def _src_browser_id_for(spec: YNode, child: YNode, target: Target, where: str) -> Compiled:
    if where != "browser_id":
        raise SpecError(
            child.line, where, "browser_id_for only computes the event's top-level browser_id"
        )
    if len(spec.value) != 1:
        raise SpecError(spec.line, where, "browser_id_for takes no transform or default")
    visitor = compile_value(child, Target("scalar"), where)
    if visitor.is_constant:
        raise SpecError(child.line, where, "browser_id_for needs the visitor id from the record")
    get_visitor = visitor.evaluate

    def placeholder(scope: Any, root: Any) -> str | None:
        value = get_visitor(scope, root)
        if value is None or value == "":
            return None  # browser_id is required: the mapper reports the missing visitor id
        return BROWSER_ID_PLACEHOLDER + (value if type(value) is str else str(value))

    return Compiled(placeholder, f"browser_id_for {visitor.source}")


_SOURCE_COMPILERS: dict[str, Callable[[YNode, YNode, Target, str], Compiled]] = {
    "path": _src_path,
    "const": _src_const,
    "coalesce": _src_coalesce,
    "template": lambda spec, child, target, where: template(child, where),
    "object": _src_object,
    "list": _src_list,
    "each": _src_each,
    "browser_id_for": _src_browser_id_for,
}
