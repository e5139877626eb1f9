"""The local-service scripts fail with a clear message, not a traceback."""

from __future__ import annotations

import importlib.util
import socket

import pytest

from scripts.services import common, kafka, local_kafka


def test_missing_java_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CDP_CONNECTOR_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH

    with pytest.raises(common.ServiceError, match="'java' is not on PATH"):
        kafka.ensure_jars()


def test_free_ports_are_outside_the_ephemeral_range_and_free() -> None:
    # An ephemeral port can be taken by any outgoing connection before the service binds it.
    low, high = common.ephemeral_ports()
    for _ in range(200):
        port = common.free_port()
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    other = common.free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", common.free_port()))
        port = taken.getsockname()[1]
        picks = iter([port, port, other])
        monkeypatch.setattr(common._pick, "randrange", lambda *_: next(picks))
        assert common.free_port() == other


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
    monkeypatch.setattr(local_kafka, "STATE_DIR", tmp_path / "state")
    (tmp_path / "state").mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        code = local_kafka.main(["start", "--port", str(sock.getsockname()[1])])

    assert code == 1
    assert "already in use" in capsys.readouterr().err


def test_a_port_in_time_wait_counts_as_free() -> None:
    # The side that closes first keeps the port in TIME_WAIT for a minute: a broker that
    # was just stopped (it closes its clients' connections) leaves exactly this behind.
    # Its listener has SO_REUSEADDR, as every JVM server socket on Linux does.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server_side, _ = listener.accept()
        server_side.close()  # the server closes first: its end goes to TIME_WAIT
        client.recv(1)
        client.close()
    # What the old check did (no SO_REUSEADDR): refused for that minute.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    common.ensure_port_free(port, "Kafka broker")


def test_start_without_confluent_kafka_launches_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "confluent_kafka" else real_find_spec(name, *a),
    )  # fmt: skip
    spawned: list[object] = []
    monkeypatch.setattr(kafka, "spawn", lambda *a, **k: spawned.append(a))
    monkeypatch.setattr(local_kafka, "STATE_DIR", tmp_path / "state")
    (tmp_path / "state" / "data").mkdir(parents=True)

    assert local_kafka.main(["start"]) == 1
    assert local_kafka.main(["restart"]) == 1

    err = capsys.readouterr().err
    assert "confluent_kafka is not importable" in err
    assert "run scripts/setup" in err
    assert spawned == []
    assert (tmp_path / "state" / "data").is_dir()  # the last run's data is not wiped


def test_a_start_that_fails_after_launching_stops_what_it_launched(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    proc = common.spawn(["sleep", "60"], tmp_path / "server.log")

    def broken_ready(conf: dict[str, str]) -> bool:
        raise ModuleNotFoundError("No module named 'confluent_kafka'")

    monkeypatch.setattr(kafka, "_metadata_ready", broken_ready)
    broker = kafka.Broker(proc, 1, tmp_path / "server.log", 2, tmp_path)
    with pytest.raises(ModuleNotFoundError):
        kafka.wait_ready(broker)
    assert proc.wait(timeout=5) is not None
    assert not common.pid_alive(proc.pid)


def test_restart_without_a_previous_start_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(local_kafka, "STATE_DIR", tmp_path / "state")
    assert local_kafka.main(["restart"]) == 1
    assert "use start" in capsys.readouterr().err
