"""The chart against a real kube-apiserver (etcd-backed, loopback): what schemas miss."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from connector.observability import Metrics
from scripts.services.kube_apiserver import Cluster
from tests.helm.helm_helpers import VALUES, Helm, documents, one, to_yaml

pytestmark = [pytest.mark.helm, pytest.mark.integration]

VALUE_SETS = {
    "default": ("cdp-connector", "default.yaml"),
    "keda-servicemonitor": ("cdp-connector", "keda-servicemonitor.yaml"),
    "existing-secret": ("cdp-connector", "existing-secret.yaml"),
    "sidecar": ("examples/shop-with-connector", "sidecar.yaml"),
}
WORKLOAD = {
    "default": "default-cdp-connector",
    "keda-servicemonitor": "keda-servicemonitor-cdp-connector",
    "existing-secret": "existing-secret-cdp-connector",
    "sidecar": "sidecar-shop",
}


def _get(k8s: Helm, cluster: Cluster, namespace: str, *what: str) -> dict[str, Any]:
    result = k8s.kubectl(cluster.kubeconfig, "-n", namespace, "get", *what, "-o", "json")
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_server_side_dry_run_accepts_the_release(
    k8s: Helm, charts: Path, kube_cluster: Cluster, name: str
) -> None:
    chart, values = VALUE_SETS[name]
    result = k8s.helm(
        "install", f"dry-{name}", str(charts / chart), "-f", str(VALUES / values),
        "--namespace", "default", "--dry-run=server",
        # A parent chart shows a subchart's NOTES only when asked.
        "--render-subchart-notes", kubeconfig=kube_cluster.kubeconfig,
    )  # fmt: skip
    assert "kafka-consumer-groups.sh" in result.stdout.split("NOTES:", 1)[1]


def test_notes_tell_how_to_check_lag_and_metrics(
    k8s: Helm, charts: Path, kube_cluster: Cluster
) -> None:
    result = k8s.helm(
        "install", "cdp", str(charts / "cdp-connector"), "-f", str(VALUES / "default.yaml"),
        "--namespace", "default", "--dry-run=server", kubeconfig=kube_cluster.kubeconfig,
    )  # fmt: skip
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kafka-consumer-groups.sh --bootstrap-server kafka:9092" in notes
    assert "--describe --group cdp-connector" in notes
    assert "port-forward svc/cdp-cdp-connector-metrics 9400" in notes
    assert "curl -s http://127.0.0.1:9400/metrics" in notes
    # The metric names the notes point at are ones the connector exports.
    named = set(re.findall(r"cdp_connector_\w+", notes))
    exported = {m.name for m in Metrics("x").registry.collect()} | {
        f"{m.name}_total" for m in Metrics("x").registry.collect() if m.type == "counter"
    }
    assert named and named <= exported


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_install_upgrade_uninstall(
    k8s: Helm, charts: Path, kube_cluster: Cluster, name: str
) -> None:
    chart, values = VALUE_SETS[name]
    namespace = f"t-{name}"
    common = [str(charts / chart), "-f", str(VALUES / values), "--namespace", namespace]
    kubeconfig = kube_cluster.kubeconfig
    k8s.helm("install", name, *common, "--create-namespace", kubeconfig=kubeconfig)
    before = _get(k8s, kube_cluster, namespace, "deployment", WORKLOAD[name])

    prefix = "cdp-connector." if name == "sidecar" else ""
    change = f"{prefix}config.connector.delivery.max_in_flight=32"
    k8s.helm("upgrade", name, *common, "--set", change, kubeconfig=kubeconfig)
    after = _get(k8s, kube_cluster, namespace, "deployment", WORKLOAD[name])
    key = "checksum/cdp-connector-config"
    old = before["spec"]["template"]["metadata"]["annotations"][key]
    assert after["spec"]["template"]["metadata"]["annotations"][key] != old
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    config_maps = _get(
        k8s, kube_cluster, namespace, "configmaps", "-l", "app.kubernetes.io/name=cdp-connector"
    )
    [config_map] = config_maps["items"]
    assert "max_in_flight: 32" in config_map["data"]["connector.yaml"]
    if name == "keda-servicemonitor":
        _get(k8s, kube_cluster, namespace, "scaledobject", WORKLOAD[name])
        _get(k8s, kube_cluster, namespace, "servicemonitor", WORKLOAD[name])

    k8s.helm("uninstall", name, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
    left = _get(
        k8s,
        kube_cluster,
        namespace,
        "deployments,configmaps,secrets,services",
        "-l",
        "app.kubernetes.io/instance=" + name,
    )
    assert left["items"] == []


def test_selector_not_matching_labels_is_rejected_by_the_server(
    k8s: Helm, charts: Path, kube_cluster: Cluster
) -> None:
    rendered = k8s.helm(
        "template", "broken", str(charts / "cdp-connector"), "-f", str(VALUES / "default.yaml")
    ).stdout
    docs = documents(rendered)
    one(docs, "Deployment")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other"
    broken = to_yaml(docs)
    # The JSON schemas cannot see it...
    assert k8s.kubeconform(broken)["summary"]["invalid"] == 0
    # ...the API server can.
    result = k8s.kubectl(
        kube_cluster.kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", "-",
        check=False, stdin=broken,
    )  # fmt: skip
    assert result.returncode != 0
    assert "selector" in result.stderr
    assert "does not match template" in result.stderr


def test_alerts_and_dashboard_install_and_uninstall(
    k8s: Helm, charts: Path, kube_cluster: Cluster
) -> None:
    namespace, kubeconfig = "t-monitoring", kube_cluster.kubeconfig
    common = [str(charts / "cdp-connector"), "-f", str(VALUES / "monitoring.yaml")]
    k8s.helm("install", "mon", *common, "--namespace", namespace, "--create-namespace",
             kubeconfig=kubeconfig)  # fmt: skip
    rule = _get(k8s, kube_cluster, namespace, "prometheusrule", "mon-cdp-connector")
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert "CdpConnectorCircuitOpen" in alerts
    dashboard = _get(k8s, kube_cluster, namespace, "configmap", "mon-cdp-connector-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["cdp-connector.json"])["uid"] == "cdp-connector"
    k8s.helm("uninstall", "mon", "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
    left = _get(k8s, kube_cluster, namespace, "prometheusrules,configmaps",
                "-l", "app.kubernetes.io/instance=mon")  # fmt: skip
    assert left["items"] == []
