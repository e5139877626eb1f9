"""The local-service scripts fail with a clear message, not a traceback."""

from __future__ import annotations

import socket

import pytest

from scripts.services import common, kafka


def test_missing_java_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CDP_CONNECTOR_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH

    with pytest.raises(common.ServiceError, match="'java' is not on PATH"):
        kafka.ensure_jars()


def test_taken_port_is_refused_before_anything_starts() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(common.ServiceError, match=f"port {port} .* already in use"):
            common.ensure_port_free(port, "Kafka broker")


def test_cli_prints_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kafka, "STATE_DIR", tmp_path / "state")
    (tmp_path / "state").mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        code = kafka.main(["start", "--port", str(sock.getsockname()[1])])

    assert code == 1
    assert "already in use" in capsys.readouterr().err
