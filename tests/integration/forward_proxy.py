"""A real forward proxy (Debian's tinyproxy) and the TLS material of an https sandbox.

``Tinyproxy`` runs ``tinyproxy -d`` on a loopback port with an optional Basic
credential; it can be stopped and started again on the same port (an outage of the
proxy). ``TlsMaterial`` makes, with openssl, a CA and a server certificate for
127.0.0.1, a client CA with a client certificate it signed, and a self-signed client
certificate no one trusts: everything a CONNECT + mutual-TLS test needs.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.services.common import free_port


def tinyproxy_binary() -> str:
    found = shutil.which("tinyproxy") or shutil.which("tinyproxy", path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(
            "tinyproxy is not installed; scripts/setup installs it (Debian's tinyproxy-bin)",
            pytrace=False,
        )
    return found


class Tinyproxy:
    """tinyproxy on ``127.0.0.1:port``; ``credentials``: the one Basic user it accepts."""

    def __init__(self, folder: Path, credentials: tuple[str, str] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.credentials = credentials
        self.log = folder / "tinyproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, credentials: tuple[str, str] | None = None) -> Tinyproxy:
        """Start (again, on the same port); ``credentials`` replace the accepted ones."""
        if credentials is not None:
            self.credentials = credentials
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            "MaxClients 400",
            "LogLevel Info",
            f'LogFile "{self.log}"',
            f'PidFile "{self.folder / "tinyproxy.pid"}"',
            "DisableViaHeader Yes",
        ]
        if self.credentials is not None:
            lines.append("BasicAuth {} {}".format(*self.credentials))
        config = self.folder / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        with (self.folder / "tinyproxy.stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                [tinyproxy_binary(), "-d", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tinyproxy exited {self.process.returncode}: "
                    f"{(self.folder / 'tinyproxy.stderr').read_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tinyproxy did not listen within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def connects(self, target: str) -> int:
        """CONNECT requests to ``target`` (host:port) the proxy has logged."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count(f"CONNECT {target} ")

    def requests_to(self, origin: str) -> int:
        """Absolute-form requests for ``origin`` (http://host:port) it has logged."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count(f" {origin}/")


@dataclass(frozen=True)
class TlsMaterial:
    """PEM files: ``ca`` (signed ``server``), ``client_ca`` (signed ``client``), and a
    self-signed ``rogue`` client certificate. Each certificate has its ``*_key``."""

    ca: Path
    server: Path
    server_key: Path
    client_ca: Path
    client: Path
    client_key: Path
    rogue: Path
    rogue_key: Path

    def admin_context(self) -> ssl.SSLContext:
        """What the test's own admin calls to the sandbox trust and show."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(self.client, self.client_key)
        return context


def make_tls_material(folder: Path) -> TlsMaterial:
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    def self_signed(name: str, subject: str, *extra: str) -> None:
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                subject, "-keyout", f"{name}.key", "-out", f"{name}.pem", *extra)  # fmt: skip

    def signed(name: str, ca: str, subject: str, ext: str) -> None:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        (folder / f"{name}.ext").write_text(ext)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                "-extfile", f"{name}.ext")  # fmt: skip

    ca_ext = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
    self_signed("ca", "/CN=Test Company Root CA", *ca_ext)
    self_signed("client-ca", "/CN=Test Client CA", *ca_ext)
    signed("server", "ca", "/CN=127.0.0.1",
           "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    signed("client", "client-ca", "/CN=cdp-connector", "extendedKeyUsage=clientAuth\n")
    self_signed("rogue", "/CN=cdp-connector")
    return TlsMaterial(
        ca=folder / "ca.pem",
        server=folder / "server.pem",
        server_key=folder / "server.key",
        client_ca=folder / "client-ca.pem",
        client=folder / "client.pem",
        client_key=folder / "client.key",
        rogue=folder / "rogue.pem",
        rogue_key=folder / "rogue.key",
    )
