"""Running helm, kubeconform and kubectl for the chart tests, and reading their output."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.services.k8s_tools import KUBE_MAJOR, KUBE_MINOR, Tools

KUBE_VERSION = f"{KUBE_MAJOR}.{KUBE_MINOR}.0"
VALUES = Path(__file__).with_name("values")


def run(
    cmd: list[str], *, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool; with ``check``, fail with its full output instead of a bare exit code."""
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Helm:
    """The cached tools plus a private HELM_*_HOME, so tests never touch ~/.config/helm."""

    tools: Tools
    home: Path

    def helm(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = [
            f"HELM_CACHE_HOME={self.home / 'cache'}",
            f"HELM_CONFIG_HOME={self.home / 'config'}",
            f"HELM_DATA_HOME={self.home / 'data'}",
        ]
        if kubeconfig is not None:
            env.append(f"KUBECONFIG={kubeconfig}")
        return run(["env", *env, str(self.tools.helm), *args], check=check)

    def template(
        self, chart: Path, *values: str, release: str = "cdp", sets: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """``helm template`` with values files from tests/helm/values; the parsed objects."""
        args = ["template", release, str(chart), "--namespace", "shop"]
        for name in values:
            args += ["-f", str(VALUES / name)]
        for item in sets:
            args += ["--set", item]
        return documents(self.helm(*args).stdout)

    def kubeconform(self, manifests: str) -> dict[str, Any]:
        """Validate against the local schemas only (strict); kubeconform's JSON report."""
        cmd = [str(self.tools.kubeconform), "-strict", "-summary", "-output", "json",
               "-kubernetes-version", KUBE_VERSION]  # fmt: skip
        for location in self.tools.schema_locations():
            cmd += ["-schema-location", location]
        result = run([*cmd, "-"], check=False, stdin=manifests)
        try:
            report: dict[str, Any] = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"kubeconform said:\n{result.stdout}\n{result.stderr}") from exc
        return report

    def kubectl(
        self, kubeconfig: Path, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [str(self.tools.kubectl), "--kubeconfig", str(kubeconfig), *args],
            check=check,
            stdin=stdin,
        )


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {doc["kind"] for doc in docs}


def container(pod_spec: dict[str, Any], name: str = "cdp-connector") -> dict[str, Any]:
    for item in pod_spec["containers"]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no container {name!r} in {[c['name'] for c in pod_spec['containers']]}")


def to_yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)
