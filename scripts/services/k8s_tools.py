"""Kubernetes tools for the chart tests, built from the registries and cached by version.

Everything lands under ``<cache>/k8s/<name>-<version>/`` (``<cache>`` is
``$CDP_CONNECTOR_CACHE`` or ``~/.cache/cdp-connector``); a folder is complete when it holds
``.complete``, so a reused machine skips every build. Sources:

- helm and kubeconform: ``go install`` from the Go module proxy (helm with the ldflags its
  Makefile sets, or it believes the cluster is Kubernetes v1.20);
- Kubernetes JSON schemas: PyPI ``kubernetes-validate``, rewritten so kubeconform resolves
  their ``$ref`` locally;
- ServiceMonitor, PrometheusRule and ScaledObject schemas: the CRDs in the
  prometheus-operator and KEDA Go modules, converted by kubeconform's own
  ``openapi2jsonschema.py`` (the folder's name carries a hash of the list, so adding a
  CRD rebuilds it);
- etcd and kube-apiserver (+ kubectl): built from wrapper Go modules, because both
  upstream modules carry ``replace`` directives that ``go install`` refuses.

Command line (``scripts/k8s-tools`` calls this)::

    python -m scripts.services.k8s_tools [ensure]   # build what is missing, print paths
    python -m scripts.services.k8s_tools check      # exit 1 if anything is missing
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.services.common import ServiceError, cache_dir, require_tool

HELM_VERSION = "v3.22.0"
KUBECONFORM_VERSION = "v0.8.0"
KUBERNETES_VALIDATE_VERSION = "1.37.0"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
KEDA_VERSION = "v2.21.0"
ETCD_VERSION = "v3.7.3"
KUBERNETES_VERSION = "v1.37.2"
# The Kubernetes minor helm assumes for `helm template`/`lint` (no cluster to ask).
KUBE_MAJOR, KUBE_MINOR = "1", "37"

HINT = "run scripts/k8s-tools to build and cache them"


def tools_root() -> Path:
    return cache_dir() / "k8s"


@dataclass(frozen=True)
class Tools:
    """Paths of the cached tools (they exist once ``ensure_all`` returned)."""

    helm: Path
    kubeconform: Path
    k8s_schemas: Path  # holds v1.37.0-local[-strict]/<kind>-<group>-<version>.json
    crd_schemas: Path  # <kind>-<group>-<version>.json of each CRD in CRD_SOURCES
    crds: Path  # the CRD manifests themselves, to apply to an API server
    etcd: Path
    kube_apiserver: Path
    kubectl: Path

    def schema_locations(self) -> list[str]:
        """kubeconform ``-schema-location`` templates that resolve everything locally."""
        kind = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
        return [
            f"{self.k8s_schemas}/{{{{ .NormalizedKubernetesVersion }}}}-local"
            f"{{{{ .StrictSuffix }}}}/{kind}",
            f"{self.crd_schemas}/{kind}",
        ]


def _dirs() -> dict[str, Path]:
    root = tools_root()
    return {
        "helm": root / f"helm-{HELM_VERSION}",
        "kubeconform": root / f"kubeconform-{KUBECONFORM_VERSION}",
        "k8s_schemas": root / f"schemas-kubernetes-validate-{KUBERNETES_VALIDATE_VERSION}",
        "crds": root / f"crds-po-{PROMETHEUS_OPERATOR_VERSION}-keda-{KEDA_VERSION}-{_crd_set()}",
        "etcd": root / f"etcd-{ETCD_VERSION}",
        "kubernetes": root / f"kubernetes-{KUBERNETES_VERSION}",
    }


def tools() -> Tools:
    """Where the cached tools are (whether built or not)."""
    d = _dirs()
    return Tools(
        helm=d["helm"] / "helm",
        kubeconform=d["kubeconform"] / "kubeconform",
        k8s_schemas=d["k8s_schemas"],
        crd_schemas=d["crds"] / "schemas",
        crds=d["crds"] / "manifests",
        etcd=d["etcd"] / "etcd",
        kube_apiserver=d["kubernetes"] / "kube-apiserver",
        kubectl=d["kubernetes"] / "kubectl",
    )


RENDER_TOOLS = ("helm", "kubeconform", "k8s_schemas", "crds")
CLUSTER_TOOLS = ("etcd", "kubernetes")


def missing(names: tuple[str, ...] = RENDER_TOOLS + CLUSTER_TOOLS) -> list[str]:
    """Those of ``names`` (keys of the cache layout) not complete in the cache."""
    dirs = _dirs()
    return [name for name in names if not (dirs[name] / ".complete").exists()]


# -- helpers ------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"k8s-tools: {msg}", file=sys.stderr, flush=True)


def _go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The machine is shared: keep compile parallelism modest (override with K8S_TOOLS_GO_P).
    jobs = os.environ.get("K8S_TOOLS_GO_P", "2")
    env["GOFLAGS"] = f"{env.get('GOFLAGS', '')} -buildvcs=false -p={jobs}".strip()
    env["CGO_ENABLED"] = "0"
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - argv built here from pinned names
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise ServiceError(f"{' '.join(cmd)} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def _go() -> str:
    return require_tool("go", "build the Kubernetes tools from the Go module proxy")


def _module_dir(module: str, version: str) -> Path:
    """Download a Go module (source only) into the module cache; return its folder."""
    with tempfile.TemporaryDirectory() as tmp:
        out = _run([_go(), "mod", "download", "-json", f"{module}@{version}"], cwd=Path(tmp))
    return Path(json.loads(out)["Dir"])


def _install(dest: Path, what: str, build: Callable[[Path], None]) -> None:
    """Build into a staging folder, then move it into place and mark it complete."""
    if (dest / ".complete").exists():
        return
    _log(f"building {what} into {dest}")
    started = time.monotonic()
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    build(staging)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    (dest / ".complete").touch()
    _log(f"{what} ready in {time.monotonic() - started:.0f}s")


# -- the tools ----------------------------------------------------------------


def _build_helm(out: Path) -> None:
    ldflags = " ".join(
        [
            "-s -w",
            f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor={KUBE_MAJOR}",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={KUBE_MINOR}",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={KUBE_MAJOR}",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={KUBE_MINOR}",
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [_go(), "install", "-ldflags", ldflags, f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
            cwd=Path(tmp),
            env=_go_env(out),
        )


def _build_kubeconform(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [
                _go(), "install", "-ldflags", "-s -w",
                f"github.com/yannh/kubeconform/cmd/kubeconform@{KUBECONFORM_VERSION}",
            ],
            cwd=Path(tmp),
            env=_go_env(out),
        )  # fmt: skip
    source = _module_dir("github.com/yannh/kubeconform", KUBECONFORM_VERSION)
    shutil.copyfile(source / "scripts" / "openapi2jsonschema.py", out / "openapi2jsonschema.py")


def _build_k8s_schemas(out: Path) -> None:
    """Unpack kubernetes-validate's schemas for one Kubernetes minor, made kubeconform-local."""
    version = f"v{KUBE_MAJOR}.{KUBE_MINOR}.0"
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [
                sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                "--only-binary=:all:", f"kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}",
                "-d", tmp,
            ]
        )  # fmt: skip
        wheel = next(Path(tmp).glob("kubernetes_validate-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                parts = name.split("/")
                if len(parts) != 4 or parts[1] != "kubernetes-json-schema":
                    continue
                if parts[2] not in (f"{version}-local", f"{version}-local-strict"):
                    continue
                schema = json.loads(archive.read(name))
                # kubeconform resolves $ref against the file's own folder; the bundled
                # files point at an absolute /api/ path and carry a remote $id.
                schema.pop("$id", None)
                text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
                target = out / parts[2] / parts[3]
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)
    if not (out / f"{version}-local-strict" / "deployment-apps-v1.json").exists():
        raise ServiceError(f"kubernetes-validate {KUBERNETES_VALIDATE_VERSION} has no {version}")


CRD_SOURCES = [
    (
        "github.com/prometheus-operator/prometheus-operator",
        PROMETHEUS_OPERATOR_VERSION,
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
    (
        "github.com/prometheus-operator/prometheus-operator",
        PROMETHEUS_OPERATOR_VERSION,
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    ("github.com/kedacore/keda/v2", KEDA_VERSION, "config/crd/bases/keda.sh_scaledobjects.yaml"),
]


def _crd_set() -> str:
    """A short hash of CRD_SOURCES: a cache folder built for another list is not reused."""
    return hashlib.sha256(repr(CRD_SOURCES).encode()).hexdigest()[:8]


def _build_crds(out: Path) -> None:
    converter = tools().kubeconform.parent / "openapi2jsonschema.py"
    (out / "manifests").mkdir()
    (out / "schemas").mkdir()
    for module, version, path in CRD_SOURCES:
        source = _module_dir(module, version) / path
        shutil.copyfile(source, out / "manifests" / source.name)
    env = dict(os.environ, FILENAME_FORMAT="{kind}-{group}-{version}")
    # Unknown top-level fields are typos too (kubeconform -strict does the same for built-ins).
    env["DENY_ROOT_ADDITIONAL_PROPERTIES"] = "1"
    manifests = sorted(str(p) for p in (out / "manifests").iterdir())
    _run([sys.executable, str(converter), *manifests], cwd=out / "schemas", env=env)


TOOLS_GO = """//go:build tools

package tools

import (
{imports}
)
"""


def _wrapper_module(folder: Path, imports: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f'\t_ "{pkg}"' for pkg in imports)
    (folder / "tools.go").write_text(TOOLS_GO.format(imports=lines))


def _build_etcd(out: Path) -> None:
    go = _go()
    with tempfile.TemporaryDirectory() as tmp:
        mod = Path(tmp)
        (mod / "go.mod").write_text("module local/etcdwrap\n\ngo 1.25\n")
        _wrapper_module(mod, ["go.etcd.io/etcd/server/v3"])
        env = _go_env()
        _run([go, "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], cwd=mod, env=env)
        _run([go, "mod", "tidy"], cwd=mod, env=env)
        target = str(out / "etcd")
        build = [go, "build", "-ldflags", "-s -w", "-o", target, "go.etcd.io/etcd/server/v3"]
        _run(build, cwd=mod, env=env)


def _staging_replaces(kubernetes_go_mod: str) -> list[str]:
    """The ``k8s.io/*`` modules k8s.io/kubernetes replaces with ./staging paths."""
    names = []
    for line in kubernetes_go_mod.splitlines():
        parts = line.split()
        if "=>" in parts and parts[-1].startswith("./staging/"):
            names.append(parts[parts.index("=>") - 1])
    return sorted(set(names))


def _build_kubernetes(out: Path) -> None:
    go = _go()
    source = _module_dir("k8s.io/kubernetes", KUBERNETES_VERSION)
    staging = _staging_replaces((source / "go.mod").read_text())
    if not staging:
        raise ServiceError(f"no staging modules found in k8s.io/kubernetes@{KUBERNETES_VERSION}")
    # Staging modules are published as v0.<minor>.<patch> for a v1.<minor>.<patch> release.
    staging_version = "v0." + KUBERNETES_VERSION.removeprefix("v1.")
    replaces = "\n".join(f"\t{name} => {name} {staging_version}" for name in staging)
    cmds = ["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
            f"-X k8s.io/component-base/version.gitMajor={KUBE_MAJOR}",
            f"-X k8s.io/component-base/version.gitMinor={KUBE_MINOR}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}",
            f"-X k8s.io/client-go/pkg/version.gitMajor={KUBE_MAJOR}",
            f"-X k8s.io/client-go/pkg/version.gitMinor={KUBE_MINOR}",
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        mod = Path(tmp)
        (mod / "go.mod").write_text(
            f"module local/kubewrap\n\ngo 1.25\n\nreplace (\n{replaces}\n)\n"
        )
        _wrapper_module(mod, cmds)
        env = _go_env()
        _run([go, "get", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], cwd=mod, env=env)
        _run([go, "mod", "tidy"], cwd=mod, env=env)
        for pkg in cmds:
            target = out / pkg.rsplit("/", 1)[-1]
            _run([go, "build", "-ldflags", ldflags, "-o", str(target), pkg], cwd=mod, env=env)


def ensure_all() -> Tools:
    """Build or fetch every tool that is not cached yet; return their paths."""
    d = _dirs()
    tools_root().mkdir(parents=True, exist_ok=True)
    # Two runs at once (CI and a developer, or parallel helpers) would build into the same
    # staging folders: the second waits, then finds everything complete.
    with (tools_root() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _ensure_each(d)
    return tools()


def _ensure_each(d: dict[str, Path]) -> None:
    _install(d["helm"], f"helm {HELM_VERSION}", _build_helm)
    _install(d["kubeconform"], f"kubeconform {KUBECONFORM_VERSION}", _build_kubeconform)
    _install(d["k8s_schemas"], "Kubernetes JSON schemas", _build_k8s_schemas)
    _install(d["crds"], "CRDs (ServiceMonitor, PrometheusRule, ScaledObject)", _build_crds)
    _install(d["etcd"], f"etcd {ETCD_VERSION}", _build_etcd)
    _install(d["kubernetes"], f"kube-apiserver and kubectl {KUBERNETES_VERSION}", _build_kubernetes)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "ensure"
    if command == "check":
        absent = missing()
        if absent:
            print(f"k8s-tools: missing {', '.join(absent)}; {HINT}", file=sys.stderr)
            return 1
        return 0
    if command != "ensure":
        print("usage: k8s-tools [ensure|check]", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        found = ensure_all()
    except ServiceError as exc:
        print(f"k8s-tools: {exc}", file=sys.stderr)
        return 1
    for name, path in vars(found).items():
        print(f"{name}={path}")
    _log(f"all tools ready under {tools_root()} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
