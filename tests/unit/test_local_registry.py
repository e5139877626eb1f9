"""The local schema-registry script fails with a clear message, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from scripts.services import common, registry


def test_missing_java_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CDP_CONNECTOR_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH

    with pytest.raises(common.ServiceError, match="'java' is not on PATH"):
        registry.ensure_app()


def test_cli_refuses_a_taken_port_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(registry, "STATE_DIR", tmp_path / "state")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        code = registry.main(["start", "--port", str(sock.getsockname()[1])])

    assert code == 1
    assert "local-registry: port" in capsys.readouterr().err


def test_status_without_a_started_registry_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(registry, "STATE_DIR", tmp_path)

    assert registry.main(["status"]) == 1
    assert capsys.readouterr().out == "not running\n"
