"""The YAML reader keeps line numbers and refuses duplicate keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.yaml_lines import load_yaml, parse_yaml


def test_nodes_and_keys_carry_their_lines() -> None:
    root = parse_yaml("a: 1\nrules:\n  - name: x\n    when: y\n", "m.yaml")
    assert root.key_lines == {"a": 1, "rules": 2}
    rule = root.value["rules"].value[0]
    assert rule.line == 3
    assert rule.key_lines["when"] == 4
    assert root.to_python() == {"a": 1, "rules": [{"name": "x", "when": "y"}]}


def test_duplicate_key_is_an_error_with_both_lines() -> None:
    with pytest.raises(ConfigError, match=r"m.yaml:3: duplicate key 'a' \(first at line 1\)"):
        parse_yaml("a: 1\nb: 2\na: 3\n", "m.yaml")


def test_merge_keys_share_blocks_and_own_keys_override() -> None:
    root = parse_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nagain: *b\n", "m.yaml")
    assert root.to_python()["use"] == {"x": 1, "y": 3}
    assert root.to_python()["again"] == {"x": 1, "y": 2}


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"m.yaml:2: invalid YAML"):
        parse_yaml("a: [1\n", "m.yaml")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read mapping file"):
        load_yaml(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="empty"):
        load_yaml(empty)
