"""The field table of docs/configuration.md, generated from the models in connector/config/.

    scripts/config-reference           print the table
    scripts/config-reference --write   put it into docs/configuration.md (between the markers)

tests/unit/config/test_config_reference.py fails when the file and the models disagree, so a
field, default, bound or description changes in one place: the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from connector.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN = (
    "<!-- generated from connector/config/ by scripts/config-reference --write; "
    "edit the models, not this table -->"
)
END = "<!-- end of generated table -->"


@dataclass(frozen=True)
class ConfigField:
    """One leaf field of connector.yaml: its dotted path, pydantic info and JSON schema."""

    path: str
    info: FieldInfo
    schema: dict[str, Any]


def section_model(info: FieldInfo) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (``X``, ``X | None`` or ``list[X]``), and whether a list."""
    annotation = info.annotation
    is_list = getattr(annotation, "__origin__", None) is list
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, is_list
    return None, False


def fields(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[ConfigField]:
    """Every settable leaf field, in the models' order; a list of sections is ``name[]``."""
    properties = model.model_json_schema(by_alias=True)["properties"]
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        key = info.alias or name
        sub, is_list = section_model(info)
        if sub is None:
            yield ConfigField(prefix + key, info, _plain(properties[key]))
        elif is_list:
            yield ConfigField(f"{prefix}{key}[]", info, {"type": "array"})
            yield from fields(sub, f"{prefix}{key}[].")
        else:
            yield from fields(sub, f"{prefix}{key}.")


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema, with its description and default."""
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        return {**branches[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    return schema


def values(schema: dict[str, Any]) -> str:
    """What a field accepts, from its JSON schema: the choices, or the type and bounds."""
    if "enum" in schema:
        return ", ".join(f"`{v}`" for v in schema["enum"])
    kind = {"integer": "integer", "number": "number", "boolean": "boolean", "object": "map",
            "array": "list"}.get(schema.get("type", ""), "text")  # fmt: skip
    if schema.get("format") == "path":
        kind = "path"
    bounds = [
        f"{sign} {schema[key]}"
        for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("maximum", "≤"))
        if key in schema
    ]
    if "pattern" in schema:
        bounds.append(f"`{schema['pattern']}`")
    if schema.get("minLength") == 1 or schema.get("minItems") == 1:
        bounds.append("not empty")
    return ", ".join([kind, *bounds])


def default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value, ensure_ascii=False)}`" if isinstance(value, bool | dict | list) \
        else f"`{value}`"  # fmt: skip


def table() -> str:
    lines = ["| field | values | default | meaning |", "|---|---|---|---|"]
    for field in fields():
        meaning = (field.info.description or "").replace("|", "\\|")
        lines.append(
            f"| `{field.path}` | {values(field.schema)} | {default(field.info)} | {meaning} |"
        )
    return "\n".join(lines)


def with_table(doc: str) -> str:
    """``doc`` with the text between the markers replaced by ``table()``."""
    head, found, rest = doc.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} … {END!r} are missing")
    return f"{head}{BEGIN}\n\n{table()}\n\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC}")
    args = parser.parse_args(argv)
    if not args.write:
        print(table())
        return 0
    DOC.write_text(with_table(DOC.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
