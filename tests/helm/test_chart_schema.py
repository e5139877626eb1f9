"""values.schema.json: bad values fail at install time, naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helm.helm_helpers import VALUES, Helm

pytestmark = pytest.mark.helm


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("unknown-key.yaml", "additional properties 'replicas' not allowed"),
        ("wrong-type.yaml", "at '/replicaCount': got string, want integer"),
        ("bad-region.yaml", "at '/config/connector/cdp/region'"),
        ("secret-in-config.yaml", "at '/config/connector/kafka/client/sasl.password'"),
        ("inline-cdp-key.yaml", "additional properties 'client_key' not allowed"),
        ("alert-duration.yaml", "at '/metrics/prometheusRule/for/circuitOpen'"),
        ("alert-unknown.yaml", "additional properties 'circuitClosed' not allowed"),
        ("owned-kafka-key.yaml", "at '/config/connector/kafka/client/group.id'"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(
    k8s: Helm, charts: Path, values: str, expected: str
) -> None:
    chart = charts / "cdp-connector"
    result = k8s.helm(
        "template", "cdp", str(chart), "-f", str(VALUES / "bad" / values), check=False
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert expected in result.stderr


def _objects(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _objects(value, f"{path}/{index}")
    return found


def test_schema_is_self_contained_and_closed(repo_root: Path) -> None:
    text = (repo_root / "helm" / "cdp-connector" / "values.schema.json").read_text()
    schema = json.loads(text)
    assert '"$ref"' not in text, "a $ref would need the network at install time"
    open_objects = [
        p for p, node in _objects(schema) if node.get("additionalProperties") is not False
    ]
    assert open_objects == []
