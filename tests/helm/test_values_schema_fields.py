"""The chart's closed values schema knows every connector.yaml field, and no other.

`values.schema.json` has `additionalProperties: false` everywhere, so a config field
added to `connector/config.py` but not to the schema could not be set through the
chart; a field left in the schema after it left the config would render a
connector.yaml the connector refuses. This compares the two, section by section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connector.config import Settings

pytestmark = pytest.mark.helm

SCHEMA = Path(__file__).resolve().parents[2] / "helm" / "cdp-connector" / "values.schema.json"
# Set by the chart itself: where secrets come from (env vars filled from the Secret).
CHART_MANAGED = {
    "kafka": {"sasl_password_env", "sasl_password_file"},
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
