"""The command line: configuration errors exit 2 with a message, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import main


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`run` configures the root logger for the process; undo that between tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_run_with_a_bad_config_exits_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "connector.yaml"
    (tmp_path / "m.yaml").write_text("version: 1\nrules: []\n")
    config.write_text("topics: [{name: t, decoder: schemaless, schema: x.avsc}]\n"
                      "mapping: m.yaml\ndelivery: {max_in_flight: -5}\n")  # fmt: skip

    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:3: delivery.max_in_flight: Input should be greater than or equal to 1" in err
    assert "Traceback" not in err


def test_run_with_a_missing_config_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read" in capsys.readouterr().err


def test_run_with_a_mapping_that_cannot_compile_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_CLIENT_KEY", "k")
    monkeypatch.setenv("CDP_API_TOKEN", "t")
    (tmp_path / "m.yaml").write_text(
        "version: 1\nrules:\n  - name: r\n    emit: {type: VIEW, fields: {nonsense: x}}\n"
    )
    config = tmp_path / "connector.yaml"
    config.write_text(
        "topics: [{name: t, decoder: schemaless, schema: x.avsc}]\nmapping: m.yaml\n"
        "cdp: {base_url: 'http://127.0.0.1:9'}\nobservability: {port: 0}\n"
    )
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "m.yaml:4" in err and "rule 'r'" in err and "nonsense" in err
