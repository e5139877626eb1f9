"""Rendered manifests validate against the local Kubernetes and CRD JSON schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helm.helm_helpers import VALUES, Helm, documents, one, to_yaml

pytestmark = pytest.mark.helm

VALUE_SETS = {
    "default": ("cdp-connector", "default.yaml"),
    "keda-servicemonitor": ("cdp-connector", "keda-servicemonitor.yaml"),
    "existing-secret": ("cdp-connector", "existing-secret.yaml"),
    "monitoring": ("cdp-connector", "monitoring.yaml"),
    "sidecar": ("examples/shop-with-connector", "sidecar.yaml"),
    "static-membership": ("cdp-connector", "static-membership.yaml"),
    "proxy-tls": ("cdp-connector", "proxy-tls.yaml"),
}


def _render(k8s: Helm, charts: Path, name: str) -> str:
    chart, values = VALUE_SETS[name]
    return k8s.helm("template", name, str(charts / chart), "-f", str(VALUES / values)).stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_document_is_valid(k8s: Helm, charts: Path, name: str) -> None:
    manifests = _render(k8s, charts, name)
    count = len(documents(manifests))
    report = k8s.kubeconform(manifests)
    assert report["resources"] == [], report["resources"]
    # Nothing skipped for want of a schema: every document was checked.
    assert report["summary"] == {"valid": count, "invalid": 0, "errors": 0, "skipped": 0}
    if name == "keda-servicemonitor":
        kinds = {doc["kind"] for doc in documents(manifests)}
        assert {"ScaledObject", "ServiceMonitor"} <= kinds
    if name == "monitoring":
        assert "PrometheusRule" in {doc["kind"] for doc in documents(manifests)}


def test_a_misspelt_field_is_caught(k8s: Helm, charts: Path) -> None:
    docs = documents(_render(k8s, charts, "keda-servicemonitor"))
    one(docs, "Deployment")["spec"]["replica"] = 2
    one(docs, "ScaledObject")["spec"]["maxReplicas"] = 4
    report = k8s.kubeconform(to_yaml(docs))
    assert report["summary"]["invalid"] == 2
    messages = " ".join(str(r["msg"]) for r in report["resources"])
    assert "replica" in messages
    assert "maxReplicas" in messages


def test_schemas_are_local_files(k8s: Helm) -> None:
    for location in k8s.tools.schema_locations():
        assert location.startswith("/"), location
    crd_schema = k8s.tools.crd_schemas / "scaledobject-keda-v1alpha1.json"
    assert yaml.safe_load(crd_schema.read_text())["type"] == "object"
