"""The builder of one ``fields:`` object, generated as Python source at compile time.

Every event is at least one object of a dozen fields, so the per-field cost of a
generic loop (unpack a tuple, call a closure, test, store) is most of what a
mapping costs. The builder is written out instead: a constant is a store, a plain
path (``page.url``, up to three keys) is inline ``dict.get`` calls, anything else
one call of its evaluator. Semantics are those of the loop it replaces, field by
field and in order: a null leaves the field out, a null required field is a
FieldFailure naming it (with a hint at a close key), a FieldFailure from inside
gets the key in front of its path, and a runtime error of bad data becomes a
FieldFailure ``[key]`` with the source text.

Called by ``connector.mapping.fields.compile_object`` only; the generated code
holds no text from the mapping file except as ``repr`` literals.
"""

from __future__ import annotations

from typing import Any

from connector.mapping.expressions import (
    PRIMITIVES,
    RUNTIME_ERRORS,
    Compiled,
    Evaluator,
    FieldFailure,
    missing_hint,
)
from connector.mapping.json_values import json_safe

__all__ = ["object_builder"]

_INLINE_KEYS = 3  # plain paths up to this many keys are written out


def object_builder(fields: tuple[tuple[str, Compiled, bool], ...]) -> Evaluator:
    """A function ``(scope, root) -> dict`` building ``key: value`` for each
    ``(key, compiled, required)``, in that order."""
    names: dict[str, Any] = {
        "PRIMITIVES": PRIMITIVES,
        "RUNTIME_ERRORS": RUNTIME_ERRORS,
        "FieldFailure": FieldFailure,
        "json_safe": json_safe,
        "missing_hint": missing_hint,
    }
    lines = ["def build(scope, root):", "    out = {}"]
    for index, (key, compiled, required) in enumerate(fields):
        names[f"e{index}"], names[f"s{index}"] = compiled.evaluate, compiled.source
        names[f"c{index}"] = compiled.constant
        if compiled.pipe is not None:
            source, steps, default = compiled.pipe
            names[f"b{index}"], names[f"d{index}"] = source.evaluate, default
            names.update({f"t{index}_{n}": step for n, step in enumerate(steps)})
        lines += _field(index, repr(key), compiled, required)
    lines.append("    return out")
    exec(compile("\n".join(lines), "<mapping object>", "exec"), names)  # noqa: S102 - our source
    build: Evaluator = names["build"]
    return build


def _field(index: int, key: str, compiled: Compiled, required: bool) -> list[str]:
    if compiled.is_constant and compiled.constant is not None:
        return [f"    out[{key}] = c{index}"]  # what the constant's evaluator returns
    lines = ["    try:"]
    if compiled.pipe is not None:  # modifiers.pipeline, written out
        source, steps, _ = compiled.pipe
        lines += _value(source, f"b{index}")
        indent = "        "
        for step in range(len(steps)):
            lines += [f"{indent}if v is not None:", f"{indent}    v = t{index}_{step}(v)"]
            indent += "    "
        lines += [
            f"{indent}if v is not None and type(v) not in PRIMITIVES:",
            f"{indent}    v = json_safe(v)",
            "        if v is None:",
            f"            v = d{index}",
        ]
    else:
        lines += _value(compiled, f"e{index}")
    lines += [
        "    except FieldFailure as failure:",
        f"        failure.path.insert(0, {key})",
        "        raise",
        "    except RUNTIME_ERRORS as exc:",
        f"        raise FieldFailure([{key}], f'{{s{index}}}: {{exc}}') from exc",
    ]
    if required:
        lines += [
            "    if v is None:",
            f"        hint = missing_hint(s{index}, scope, root)",
            f"        raise FieldFailure([{key}], f'required, but {{s{index}}} is missing or"
            " null{hint}')",
        ]
        lines.append(f"    out[{key}] = v")
    else:
        lines += ["    if v is not None:", f"        out[{key}] = v"]
    return lines


def _value(compiled: Compiled, name: str) -> list[str]:
    """Lines that set ``v`` to the value of ``compiled`` (its evaluator bound as ``name``)."""
    path = compiled.path
    if path is None or len(path) > _INLINE_KEYS:
        return [f"        v = {name}(scope, root)"]
    base = "root" if compiled.from_root else "scope"
    lines = ["        try:", f"            v = {base}.get({path[0]!r})"]
    indent = "            "
    for part in path[1:]:
        lines += [f"{indent}if v is not None:", f"{indent}    v = v.get({part!r})"]
        indent += "    "
    return [
        *lines,
        "        except AttributeError:",
        "            v = None",
        "        if v is not None and type(v) not in PRIMITIVES:",
        "            v = json_safe(v)",
    ]
