"""The ConfigMap's connector.yaml is accepted by the connector's own config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector import config
from connector.pipeline import build_mapper
from tests.helm.helm_helpers import Helm, one

pytestmark = pytest.mark.helm

EXAMPLE_MAPPING = Path(__file__).resolve().parents[2] / "config" / "mappings.example.yaml"


def test_chart_ships_the_projects_example_mapping_unchanged(charts: Path) -> None:
    shipped = charts / "cdp-connector" / "files" / "mappings.example.yaml"
    assert shipped.read_text() == EXAMPLE_MAPPING.read_text()


def _unpack(k8s: Helm, chart: Path, values: str, folder: Path, release: str = "cdp") -> Path:
    """Write the rendered ConfigMap's files where the pod would see them."""
    data = one(k8s.template(chart, values, release=release), "ConfigMap")["data"]
    for name, content in data.items():
        (folder / name).write_text(content)
    return folder / "connector.yaml"


def test_default_config_loads(k8s: Helm, charts: Path, tmp_path: Path) -> None:
    settings = config.load_config(_unpack(k8s, charts / "cdp-connector", "default.yaml", tmp_path))
    # The default mapping is the project's example, and the connector compiles it.
    assert settings.mapping.read_text() == EXAMPLE_MAPPING.read_text()
    assert "page-view" in build_mapper(settings).rule_names
    assert settings.mapping == tmp_path / "mappings.yaml"
    assert settings.observability.port == 9400
    assert settings.shutdown.drain_timeout_seconds == 30
    assert settings.cdp.client_key_env == "CDP_CLIENT_KEY"
    # Names of environment variables, not secrets.
    assert settings.cdp.api_token_env == "CDP_API_TOKEN"  # noqa: S105
    assert settings.kafka.sasl_password_env == "KAFKA_SASL_PASSWORD"  # noqa: S105


def test_keda_sasl_config_loads(k8s: Helm, charts: Path, tmp_path: Path) -> None:
    path = _unpack(k8s, charts / "cdp-connector", "keda-servicemonitor.yaml", tmp_path)
    settings = config.load_config(path)
    assert settings.kafka.group_id == "cdp-eu"
    assert settings.kafka.client["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings.observability.port == 9500


def test_schemaless_topic_finds_its_schema_beside_the_config(
    k8s: Helm, charts: Path, tmp_path: Path
) -> None:
    path = _unpack(k8s, charts / "cdp-connector", "existing-secret.yaml", tmp_path)
    [topic] = config.load_config(path).topics
    assert Path(topic.schema_path) == tmp_path / "clickstream-v1.avsc"
    assert Path(topic.schema_path).is_file()


def test_sidecar_example_config_loads(k8s: Helm, charts: Path, tmp_path: Path) -> None:
    chart = charts / "examples" / "shop-with-connector"
    settings = config.load_config(_unpack(k8s, chart, "sidecar.yaml", tmp_path, "shop"))
    assert settings.kafka.group_id == "shop-cdp-connector"


def test_proxy_and_tls_config_loads(k8s: Helm, charts: Path, tmp_path: Path) -> None:
    path = _unpack(k8s, charts / "cdp-connector", "proxy-tls.yaml", tmp_path)
    cdp = config.load_config(path).cdp
    assert cdp.proxy == "http://egress.corp.example:3128"
    assert cdp.keepalive_max_idle_seconds == 10
    assert (cdp.proxy_username_env, cdp.proxy_password_env) == (
        "CDP_PROXY_USERNAME", "CDP_PROXY_PASSWORD",
    )  # fmt: skip
    assert cdp.tls.ca_file == Path("/etc/cdp-connector-tls/ca/ca-bundle.pem")
    assert cdp.tls.cert_file == Path("/etc/cdp-connector-tls/client/tls.crt")
    assert cdp.tls.key_file == Path("/etc/cdp-connector-tls/client/tls.key")
