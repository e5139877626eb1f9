"""The chart rendered by the real helm: what each values set switches on and off."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.helm.helm_helpers import VALUES, Helm, container, find, kinds, one

pytestmark = pytest.mark.helm

SECRETS = ("test-client-key-7f3a", "test-api-token-91bc", "test-sasl-password-5d2e")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def chart(charts: Path) -> Path:
    return charts / "cdp-connector"


@pytest.fixture(scope="module")
def example(charts: Path) -> Path:
    return charts / "examples" / "shop-with-connector"


@pytest.mark.parametrize(
    "values",
    ["default.yaml", "keda-servicemonitor.yaml", "existing-secret.yaml", "monitoring.yaml"],
)
def test_chart_passes_strict_lint(k8s: Helm, chart: Path, values: str) -> None:
    result = k8s.helm("lint", "--strict", str(chart), "-f", str(VALUES / values))
    assert "0 chart(s) failed" in result.stdout


def test_example_parent_chart_passes_strict_lint(k8s: Helm, example: Path) -> None:
    result = k8s.helm("lint", "--strict", str(example), "-f", str(VALUES / "sidecar.yaml"))
    assert "0 chart(s) failed" in result.stdout


def test_default_deployment_has_probes_security_and_drain_grace(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "default.yaml")
    assert kinds(docs) == {
        "ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
    }  # fmt: skip
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    main = container(pod)
    assert main["args"] == ["run", "--config", "/etc/cdp-connector/connector.yaml"]
    assert main["ports"] == [{"name": "cdp-metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "cdp-metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "cdp-metrics"}
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    # drain_timeout_seconds (30) + terminationGraceExtraSeconds (15)
    assert pod["terminationGracePeriodSeconds"] == 45
    assert main["resources"]["limits"]["memory"] == "512Mi"
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/cdp-connector"]]["configMap"]["name"] == "cdp-cdp-connector"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert SHA256.match(annotations["checksum/cdp-connector-config"])
    assert SHA256.match(annotations["checksum/cdp-connector-secret"])
    service = one(docs, "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "cdp-metrics"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }


def test_secrets_reach_env_vars_but_never_the_configmap(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "keda-servicemonitor.yaml")
    config_map = json.dumps(one(docs, "ConfigMap"))
    for secret in SECRETS:
        assert secret not in config_map
        assert base64.b64encode(secret.encode()).decode() not in config_map
    secret = one(docs, "Secret")
    stored = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert stored == {
        "cdp-client-key": SECRETS[0], "cdp-api-token": SECRETS[1],
        "kafka-sasl-password": SECRETS[2],
    }  # fmt: skip
    env = container(one(docs, "Deployment")["spec"]["template"]["spec"])["env"]
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in env}
    name = secret["metadata"]["name"]
    assert refs["CDP_CLIENT_KEY"] == {"name": name, "key": "cdp-client-key"}
    assert refs["CDP_API_TOKEN"] == {"name": name, "key": "cdp-api-token"}
    assert refs["KAFKA_SASL_PASSWORD"] == {
        "name": name, "key": "kafka-sasl-password", "optional": True,
    }  # fmt: skip


def test_proxy_credentials_and_tls_files_reach_the_pod_but_never_the_configmap(
    k8s: Helm, chart: Path
) -> None:
    docs = k8s.template(chart, "proxy-tls.yaml")
    assert "test-proxy-password-3c9d" not in json.dumps(one(docs, "ConfigMap"))
    secret = one(docs, "Secret")
    stored = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert stored["cdp-proxy-username"] == "egress-user"
    assert stored["cdp-proxy-password"] == "test-proxy-password-3c9d"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    env = {item["name"]: item for item in container(pod)["env"]}
    name = secret["metadata"]["name"]
    for var, key in (("CDP_PROXY_USERNAME", "cdp-proxy-username"),
                     ("CDP_PROXY_PASSWORD", "cdp-proxy-password")):  # fmt: skip
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": name, "key": key, "optional": True}
    assert env["NO_PROXY"]["value"] == ".svc,.cluster.local"
    mounts = {m["name"]: m for m in container(pod)["volumeMounts"]}
    assert mounts["cdp-connector-tls-ca"]["mountPath"] == "/etc/cdp-connector-tls/ca"
    assert mounts["cdp-connector-tls-client"]["mountPath"] == "/etc/cdp-connector-tls/client"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cdp-connector-tls-ca"]["configMap"] == {
        "name": "company-root-ca", "items": [{"key": "ca-bundle.pem", "path": "ca-bundle.pem"}],
    }  # fmt: skip
    assert volumes["cdp-connector-tls-client"]["secret"]["secretName"] == "cdp-client-cert"
    # Without cdpTls: no TLS volumes, and the proxy variables are optional (no Secret key).
    plain = one(k8s.template(chart, "default.yaml"), "Deployment")["spec"]["template"]["spec"]
    assert not [v for v in plain["volumes"] if v["name"].startswith("cdp-connector-tls")]


def test_ca_from_a_configmap_and_a_secret_at_once_is_refused(k8s: Helm, chart: Path) -> None:
    result = k8s.helm(
        "template", "cdp", str(chart), "-f", str(VALUES / "proxy-tls.yaml"),
        "--set", "cdpTls.caSecret=other", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cdpTls" in result.stderr


def test_config_or_secret_change_rolls_the_pods(k8s: Helm, chart: Path) -> None:
    def annotations(*sets: str) -> dict[str, str]:
        docs = k8s.template(chart, "default.yaml", sets=sets)
        return dict(one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"])

    before = annotations()
    config_changed = annotations("config.connector.delivery.max_in_flight=64")
    secret_changed = annotations("secrets.cdpApiToken=rotated")
    config_key, secret_key = "checksum/cdp-connector-config", "checksum/cdp-connector-secret"
    assert config_changed[config_key] != before[config_key]
    assert config_changed[secret_key] == before[secret_key]
    assert secret_changed[secret_key] != before[secret_key]
    assert secret_changed[config_key] == before[config_key]


def test_keda_owns_replicas_and_servicemonitor_scrapes_metrics(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "keda-servicemonitor.yaml")
    deployment = one(docs, "Deployment")
    assert "replicas" not in deployment["spec"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 45 + 15
    assert container(pod)["ports"][0]["containerPort"] == 9500

    scaled = one(docs, "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 12)
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
        "consumerGroup": "cdp-eu",
        "topic": "web.clickstream",
        "lagThreshold": "500",
        "activationLagThreshold": "0",
        "offsetResetPolicy": "latest",
        "allowIdleConsumers": "false",
    }
    assert trigger["authenticationRef"] == {"name": "kafka-scram"}

    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert service["spec"]["ports"][0] == {
        "name": "metrics", "port": 9500, "targetPort": "cdp-metrics", "protocol": "TCP",
    }  # fmt: skip


def test_keda_max_replicas_above_partitions_is_refused(k8s: Helm, chart: Path) -> None:
    args = ["template", "cdp", str(chart), "-f", str(VALUES / "keda-servicemonitor.yaml")]
    refused = k8s.helm(*args, "--set", "keda.maxReplicas=13", check=False)
    assert refused.returncode != 0
    assert "keda.maxReplicas (13) is higher than keda.partitionCount (12)" in refused.stderr
    allowed = k8s.helm(*args, "--set", "keda.maxReplicas=13,keda.allowIdleConsumers=true")
    assert "maxReplicaCount: 13" in allowed.stdout


def test_existing_secret_is_referenced_and_not_rendered(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "existing-secret.yaml")
    assert not find(docs, "Secret")
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"checksum/cdp-connector-config"}
    env = container(deployment["spec"]["template"]["spec"])["env"]
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in env}
    assert refs["CDP_CLIENT_KEY"] == {"name": "cdp-credentials", "key": "client-key"}
    assert refs["CDP_API_TOKEN"] == {"name": "cdp-credentials", "key": "api-token"}
    assert refs["KAFKA_SASL_PASSWORD"]["key"] == "sasl-password"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in one(docs, "PodDisruptionBudget")["spec"]
    assert "ClickEvent" in one(docs, "ConfigMap")["data"]["clickstream-v1.avsc"]


def test_existing_configmap_is_mounted_and_not_rendered(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "default.yaml", sets=["config.existingConfigMap=shop-cdp-config"])
    assert not find(docs, "ConfigMap")
    pod = one(docs, "Deployment")["spec"]["template"]
    assert "checksum/cdp-connector-config" not in pod["metadata"]["annotations"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["cdp-connector-config"]["configMap"]["name"] == "shop-cdp-config"


def test_missing_cdp_credentials_fail_naming_the_value(k8s: Helm, chart: Path) -> None:
    result = k8s.helm("template", "cdp", str(chart), check=False)
    assert result.returncode != 0
    assert "secrets.cdpClientKey is required unless secrets.existingSecret" in result.stderr


def test_sidecar_mode_alone_renders_config_and_secret_only(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "default.yaml", sets=["mode=sidecar"])
    assert kinds(docs) == {"ConfigMap", "Secret"}


def test_example_parent_chart_gets_the_connector_container(k8s: Helm, example: Path) -> None:
    docs = k8s.template(example, "sidecar.yaml", release="shop")
    assert kinds(docs) == {"ConfigMap", "Secret", "Service", "Deployment"}
    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["name"] == "shop-shop"
    template = deployment["spec"]["template"]
    pod = template["spec"]
    assert [c["name"] for c in pod["containers"]] == ["shop", "cdp-connector"]
    sidecar = container(pod)
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    # drain_timeout_seconds 20 in the example's values, + 15
    assert pod["terminationGracePeriodSeconds"] == 35
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_map = one(docs, "ConfigMap")
    assert volumes["cdp-connector-config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert "group_id: shop-cdp-connector" in config_map["data"]["connector.yaml"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in sidecar["env"]}
    assert refs["CDP_API_TOKEN"] == one(docs, "Secret")["metadata"]["name"]
    assert SHA256.match(template["metadata"]["annotations"]["checksum/cdp-connector-config"])
    service = one(docs, "Service")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "shop"}
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()


def test_pdb_without_a_bound_is_refused(k8s: Helm, chart: Path) -> None:
    result = k8s.helm(
        "template", "cdp", str(chart), "-f", str(VALUES / "default.yaml"),
        "--set", "podDisruptionBudget.maxUnavailable=null", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "podDisruptionBudget: set maxUnavailable or minAvailable" in result.stderr
