"""Fixtures for the chart tests: the cached Kubernetes tools and a real API server.

The tools are built by ``scripts/k8s-tools`` (CI runs it before the tests). When they are
missing the tests fail, saying so: a chart tier that silently skips would prove nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.services import k8s_tools
from scripts.services.kube_apiserver import Cluster, start_cluster
from tests.helm.helm_helpers import Helm, run


def _require(names: tuple[str, ...]) -> None:
    absent = k8s_tools.missing(names)
    if absent:
        pytest.fail(
            f"Kubernetes tools not built: {', '.join(absent)} missing under "
            f"{k8s_tools.tools_root()}; run scripts/k8s-tools",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm, kubeconform, schemas and kubectl from the cache, with a private helm home."""
    _require(k8s_tools.RENDER_TOOLS)
    return Helm(k8s_tools.tools(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def charts(repo_root: Path, tmp_path_factory: pytest.TempPathFactory, k8s: Helm) -> Path:
    """A copy of helm/ with the example parent chart's dependency vendored (file://)."""
    copy = tmp_path_factory.mktemp("charts") / "helm"
    shutil.copytree(repo_root / "helm", copy)
    k8s.helm(
        "dependency", "update", "--skip-refresh", str(copy / "examples" / "shop-with-connector")
    )
    return copy


@pytest.fixture(scope="session")
def kube_cluster(k8s: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd + kube-apiserver on loopback for the session, with the CRDs established."""
    _require(k8s_tools.CLUSTER_TOOLS)
    cluster = start_cluster(k8s.tools, tmp_path_factory.mktemp("kube"))
    try:
        kubectl = [str(k8s.tools.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
        run([*kubectl, "apply", "--server-side", "-f", str(k8s.tools.crds)])
        run([*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"])
        yield cluster
    finally:
        cluster.stop()
