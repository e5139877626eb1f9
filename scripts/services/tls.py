"""TLS material for a test broker: a throwaway CA (openssl) and a broker keystore (keytool).

The CA's certificate is the PEM file a client trusts (librdkafka ``ssl.ca.location``);
the broker's key pair is made by the JDK's keytool in a PKCS12 keystore, its certificate
signed by the CA for ``127.0.0.1`` and ``localhost`` (librdkafka verifies the host name).
Everything is valid for two days and lives in the folder given.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.services.common import ServiceError, require_tool

SAN = "dns:localhost,ip:127.0.0.1"


@dataclass(frozen=True)
class BrokerTls:
    """The files a TLS listener and its clients need."""

    ca_pem: Path  # the CA certificate clients trust
    keystore: Path  # PKCS12: the broker's key and certificate chain
    password: str  # of the keystore and its key


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603 - argv built here
    if result.returncode != 0:
        raise ServiceError(f"{' '.join(cmd[:3])} failed:\n{result.stdout}{result.stderr}")


def make_broker_tls(folder: Path) -> BrokerTls:
    """A CA and a broker keystore signed by it, in ``folder`` (made afresh)."""
    openssl = require_tool("openssl", "make the test CA")
    keytool = require_tool("keytool", "make the broker keystore (it comes with the JDK)")
    shutil.rmtree(folder, ignore_errors=True)  # keytool refuses an alias that exists
    folder.mkdir(parents=True)
    password = secrets.token_hex(12)
    store = ["-keystore", "broker.p12", "-storetype", "PKCS12", "-storepass", password]
    _run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
          "-subj", "/CN=cdp-connector test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], folder)  # fmt: skip
    keypair = ["-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=localhost"]
    _run([keytool, "-genkeypair", "-alias", "broker", *keypair, "-validity", "2",
          "-keypass", password, *store], folder)  # fmt: skip
    _run([keytool, "-certreq", "-alias", "broker", "-ext", f"SAN={SAN}", "-file", "broker.csr",
          *store], folder)  # fmt: skip
    _run([openssl, "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "2", "-copy_extensions", "copy",
          "-out", "broker.pem"], folder)  # fmt: skip
    # The reply is the broker's certificate followed by the CA's: keytool installs the chain.
    (folder / "chain.pem").write_text(
        (folder / "broker.pem").read_text() + (folder / "ca.pem").read_text()
    )
    _run([keytool, "-importcert", "-alias", "broker", "-file", "chain.pem", "-noprompt",
          *store], folder)  # fmt: skip
    return BrokerTls(folder / "ca.pem", folder / "broker.p12", password)
