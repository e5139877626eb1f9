"""The modifiers of a field spec: ``transform:`` (one or a list) and ``default:``.

Transforms are built once at compile time; a ``lookup`` may name a file
(``connector.mapping.lookups``). Their outputs, when known (lookup tables), are
checked against the target field's allowed values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connector.mapping import fit, lookups
from connector.mapping.expressions import (
    PRIMITIVES,
    RUNTIME_ERRORS,
    Evaluator,
    SpecError,
)
from connector.mapping.json_values import json_safe
from connector.mapping.problems import suggest
from connector.mapping.targets import Target
from connector.mapping.transforms import (
    TRANSFORMS,
    Transform,
    TransformArgError,
    build_transform,
)
from connector.yaml_lines import YNode

__all__ = ["compile_transforms", "pipeline"]


def pipeline(source: Evaluator, transforms: tuple[Transform, ...], default: Any) -> Evaluator:
    """``source``, then each transform; ``default`` when the value is (or becomes) null."""

    def evaluate(scope: Any, root: Any) -> Any:
        value = source(scope, root)
        if value is None:
            return default
        for transform in transforms:
            value = transform(value)
            if value is None:
                return default
        return value if type(value) in PRIMITIVES else json_safe(value)

    return evaluate


def compile_transforms(node: YNode | None, target: Target, where: str) -> list[Transform]:
    """A field's ``transform:`` (a name, ``{name: args}``, or a list of those), checked."""
    if node is None:
        return []
    items = node.value if node.is_seq else [node]
    built: list[Transform] = []
    lines: list[YNode] = []
    for item in items:
        if item.is_scalar and isinstance(item.value, str):
            name, args = item.value, None
        elif item.is_map and len(item.value) == 1:
            ((name, arg_node),) = item.value.items()
            args = arg_node.to_python()
            if name == "lookup" and isinstance(args, dict) and "file" in args:
                args = _lookup_from_file(args, item, where)
        else:
            raise SpecError(
                item.line, where, "a transform is a name, or {name: arguments}, or a list of those"
            )
        if name not in TRANSFORMS:
            raise SpecError(
                item.line,
                where,
                f"unknown transform {name!r}{suggest(name, TRANSFORMS)} "
                f"(known: {', '.join(sorted(TRANSFORMS))})",
            )
        try:
            transform = build_transform(name, args)
        except TransformArgError as exc:
            raise SpecError(item.line, where, str(exc)) from exc
        built.append(transform)
        lines.append(item)
    for index, transform in enumerate(built):
        outputs = getattr(transform, "outputs", None)
        if outputs is not None:
            _check_outputs(outputs, built[index + 1 :], target, lines[index], where)
    return built


def _check_outputs(
    outputs: Iterable[Any], after: list[Transform], target: Target, item: YNode, where: str
) -> None:
    """A table's values, through the transforms after it, held against the field."""
    for output in sorted(outputs, key=repr):  # the same first problem every time
        value = output
        for transform in after:
            if value is None:
                break
            try:
                value = transform(value)
            except RUNTIME_ERRORS as exc:
                raise SpecError(
                    item.line, where, f"lookup value {output!r}: the next transform fails: {exc}"
                ) from exc
        try:
            value = json_safe(value)
        except (TypeError, ValueError) as exc:
            raise SpecError(item.line, where, f"lookup value {output!r}: {exc}") from exc
        shown = repr(output) if value == output else f"{output!r} (then {value!r})"
        found = fit.problem(value, target, shown)
        if found is not None:
            raise SpecError(item.line, where, f"lookup value {found}")


def _lookup_from_file(args: dict[str, Any], item: YNode, where: str) -> dict[str, Any]:
    """``{lookup: {file: F, ...}}`` → the same with ``table:`` read from F (once, at start)."""
    if "table" in args:
        raise SpecError(item.line, where, "transform 'lookup': give table or file, not both")
    rest = {k: v for k, v in args.items() if k != "file"}
    try:
        return {**rest, "table": lookups.load_table(args["file"])}
    except lookups.LookupFileError as exc:
        raise SpecError(item.line, where, str(exc)) from exc
