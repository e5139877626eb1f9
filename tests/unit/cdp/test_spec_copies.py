"""The user-facing spec copies (docs/spec, linked from the README) match the tests' copy."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_docs_spec_is_the_one_the_tests_check_against() -> None:
    docs = (ROOT / "docs" / "spec" / "cdp-stream-api.asyncapi.yaml").read_bytes()
    assert (
        docs == (ROOT / "tests" / "unit" / "fixtures" / "cdp-stream-api.asyncapi.yaml").read_bytes()
    )


def test_the_readme_links_to_files_that_exist() -> None:
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?:docs|config|avro)/[^)#]+)", readme)
    assert "docs/spec/SITECORE-OFFICIAL.md" in links
    assert [link for link in links if not (ROOT / link).exists()] == []
