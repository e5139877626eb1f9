"""`staticMembership.enabled`: each pod joins the group with its own name as group.instance.id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector import config
from tests.helm.helm_helpers import Helm, container, one

pytestmark = pytest.mark.helm

ENV = "KAFKA_GROUP_INSTANCE_ID"


def _rendered(
    k8s: Helm, charts: Path, values: str = "default.yaml"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    docs = k8s.template(charts / "cdp-connector", values)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    return one(docs, "ConfigMap")["data"], container(pod)["env"]


def test_static_membership_takes_the_pod_name_from_the_downward_api(
    k8s: Helm, charts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, env = _rendered(k8s, charts, "static-membership.yaml")

    [item] = [item for item in env if item["name"] == ENV]
    assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for name, content in data.items():  # the files as the pod sees them
        (tmp_path / name).write_text(content)
    kafka = config.load_config(tmp_path / "connector.yaml").kafka
    assert kafka.group_instance_id_env == ENV
    monkeypatch.setenv(ENV, "cdp-cdp-connector-6f7c9-abcde")
    assert kafka.member_conf()["group.instance.id"] == "cdp-cdp-connector-6f7c9-abcde"


def test_dynamic_membership_by_default(k8s: Helm, charts: Path, tmp_path: Path) -> None:
    data, env = _rendered(k8s, charts)

    assert ENV not in {item["name"] for item in env}
    (tmp_path / "connector.yaml").write_text(data["connector.yaml"])
    (tmp_path / "mappings.yaml").write_text(data["mappings.yaml"])
    kafka = config.load_config(tmp_path / "connector.yaml").kafka
    assert kafka.group_instance_id_env is None
    assert "group.instance.id" not in kafka.member_conf()
