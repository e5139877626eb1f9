"""The chart's closed values schema knows every connector.yaml field, and no other,
and accepts the same types, choices and bounds as the config models.

`values.schema.json` has `additionalProperties: false` everywhere, so a config field
added to `connector/config/` but not to the schema could not be set through the
chart; a field left in the schema after it left the config would render a
connector.yaml the connector refuses. This compares the two, section by section.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connector.config import Settings
from connector.config.librdkafka_keys import OWNED_KEYS
from scripts.config_reference import ConfigField, fields

pytestmark = pytest.mark.helm

SCHEMA = Path(__file__).resolve().parents[2] / "helm" / "cdp-connector" / "values.schema.json"
# Set by the chart itself: where secrets come from (env vars filled from the Secret), and
# the static member id (the pod name, staticMembership.enabled).
CHART_MANAGED = {
    "kafka": {"sasl_password_env", "sasl_password_file", "group_instance_id_env"},
    "cdp": {"client_key_env", "client_key_file", "api_token_env", "api_token_file"},
}


def _object_schema(node: dict[str, Any]) -> dict[str, Any]:
    """The object branch of a node (plain, an array's items, or a oneOf/anyOf with null)."""
    if node.get("type") == "array":
        return _object_schema(node["items"])
    for key in ("oneOf", "anyOf"):
        for branch in node.get(key, []):
            if branch.get("type") == "object":
                return dict(branch)
    return node


def _fields(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items() if not info.exclude}


def _sections() -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    connector = json.loads(SCHEMA.read_text())["properties"]["config"]["properties"]["connector"]
    found = []
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        model = next(
            (
                arg
                for arg in (annotation, *getattr(annotation, "__args__", ()))
                if isinstance(arg, type) and issubclass(arg, BaseModel)
            ),
            None,
        )
        if model is not None:
            found.append((name, model, _object_schema(connector["properties"][name])))
    return found


@pytest.mark.parametrize(("section", "model", "schema"), _sections(), ids=lambda v: str(v)[:20])
def test_values_schema_matches_the_config_model(
    section: str, model: type[BaseModel], schema: dict[str, Any]
) -> None:
    assert schema.get("additionalProperties") is False
    expected = _fields(model) - CHART_MANAGED.get(section, set())
    assert set(schema["properties"]) == expected
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):  # nested sections
            nested = _object_schema(schema["properties"][name])
            assert set(nested["properties"]) == _fields(sub), f"{section}.{name}"


CONSTRAINTS = ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "pattern", "minLength")
# Where the chart means to differ from the model, and why.
CHART_DIFFERS = {
    "mapping": "set by the chart (mapping: mappings.yaml), not a value",
    "cdp.base_url": "the model checks the URL in a validator with a friendlier message",
    "observability.port": "a pod's probes need a known port: no 0 (any free port)",
}


def _constraints(node: dict[str, Any]) -> dict[str, Any]:
    """What a JSON-schema node accepts, the same whichever way null is allowed."""
    branches = [b for b in node.get("anyOf", node.get("oneOf", [])) if b.get("type") != "null"]
    if len(branches) == 1:
        node = {**node, **branches[0]}
    found = {key: node[key] for key in CONSTRAINTS if key in node}
    if isinstance(found.get("type"), list):  # ["number", "null"]
        [found["type"]] = [kind for kind in found["type"] if kind != "null"]
    if "enum" in found:
        found["enum"] = [value for value in found["enum"] if value is not None]
    return found


def _chart_node(path: str) -> dict[str, Any]:
    node = json.loads(SCHEMA.read_text())["properties"]["config"]["properties"]["connector"]
    for part in path.split("."):
        node = _object_schema(node)["properties"][part.removesuffix("[]")]
    return node


def _in_chart(field: ConfigField) -> bool:
    parts = field.path.split(".")
    section, name = parts[0], parts[-1]
    return field.path not in CHART_DIFFERS and name not in CHART_MANAGED.get(section, set())


@pytest.mark.parametrize("field", [f for f in fields() if _in_chart(f)], ids=lambda f: f.path)
def test_values_schema_accepts_what_the_config_model_accepts(field: ConfigField) -> None:
    model = _constraints(field.schema)
    if field.schema.get("format") == "path":
        model["type"] = "string"
    assert _constraints(_chart_node(field.path)) == model


def test_values_schema_refuses_the_kafka_keys_the_connector_owns() -> None:
    client = _chart_node("kafka.client")
    rules = client["patternProperties"].items()
    refused = [re.compile(p) for p, rule in rules if rule.get("not") == {}]  # "not {}": never

    def is_refused(key: str) -> bool:
        return any(p.search(key) for p in refused)

    assert all(is_refused(key) for key in OWNED_KEYS)
    allowed = ("session.timeout.ms", "linger.ms", "security.protocol", "sasl.username")
    assert not any(is_refused(key) for key in allowed)
