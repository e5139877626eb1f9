"""A real Kubernetes API server (etcd + kube-apiserver) on loopback, for the chart tests.

No kubelet and no container runtime: objects are validated, admitted and stored exactly as
a cluster would, but pods never run. The binaries come from ``scripts/k8s-tools``.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from scripts.services.common import (
    ServiceError,
    free_port,
    require_tool,
    spawn,
    stop_process,
    wait_until,
)
from scripts.services.k8s_tools import Tools

START_TIMEOUT = 90.0


@dataclass
class Cluster:
    """A running etcd + kube-apiserver pair; ``kubeconfig`` grants cluster-admin."""

    etcd: subprocess.Popen[bytes]
    apiserver: subprocess.Popen[bytes]
    url: str
    token: str
    kubeconfig: Path
    workdir: Path

    def stop(self) -> None:
        for proc in (self.apiserver, self.etcd):
            stop_process(proc.pid)
            proc.wait(timeout=5)


def _http_ok(url: str, token: str | None = None) -> bool:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # The server's certificate is self-signed by kube-apiserver at start.
    context = ssl._create_unverified_context()  # noqa: S323 - loopback test server
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
            return int(answer.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _kubeconfig(url: str, token: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": url, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "local",
                "context": {"cluster": "local", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "local",
    }
    return json.dumps(config, indent=2)


def start_etcd(tools: Tools, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start etcd on free loopback ports; return the process and its client URL."""
    client = f"http://127.0.0.1:{free_port()}"
    peer = f"http://127.0.0.1:{free_port()}"
    log = workdir / "etcd.log"
    cmd = [
        str(tools.etcd), "--name", "local", "--data-dir", str(workdir / "etcd-data"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"local={peer}",
        # Throwaway data: fsync would only slow every write down.
        "--unsafe-no-fsync", "--log-level", "warn",
    ]  # fmt: skip
    proc = spawn(cmd, log)
    wait_until(lambda: _http_ok(f"{client}/health"), proc, START_TIMEOUT, "etcd", log)
    return proc, client


def start_cluster(tools: Tools, workdir: Path) -> Cluster:
    """Start etcd and kube-apiserver in ``workdir``; return once /readyz answers."""
    openssl = require_tool("openssl", "make the API server's service-account key")
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "sa.key"
    pub = workdir / "sa.pub"
    for cmd in (
        [openssl, "genrsa", "-out", str(key), "2048"],
        [openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
    ):
        subprocess.run(cmd, check=True, capture_output=True)  # noqa: S603
    token = secrets.token_hex(16)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n')
    os.chmod(tokens, 0o600)

    etcd, etcd_url = start_etcd(tools, workdir)
    port = free_port()
    log = workdir / "kube-apiserver.log"
    cmd = [
        str(tools.kube_apiserver),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        # The default reconciler refuses a loopback advertise address.
        "--endpoint-reconciler-type=none",
        f"--secure-port={port}", f"--cert-dir={workdir / 'certs'}",
        f"--service-account-key-file={pub}", f"--service-account-signing-key-file={key}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
        # An allocator range only: no traffic ever goes there.
        "--service-cluster-ip-range=10.96.0.0/24",
        # No controller-manager creates service-account tokens here.
        "--disable-admission-plugins=ServiceAccount",
        "--v=0",
    ]  # fmt: skip
    apiserver = spawn(cmd, log)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _http_ok(f"{url}/readyz", token),
            apiserver,
            START_TIMEOUT,
            "kube-apiserver",
            log,
        )
    except ServiceError:
        stop_process(etcd.pid)
        raise
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(_kubeconfig(url, token))
    os.chmod(kubeconfig, 0o600)
    return Cluster(etcd, apiserver, url, token, kubeconfig, workdir)
