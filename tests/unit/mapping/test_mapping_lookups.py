"""Lookup tables from files, and transforms inside template placeholders."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from connector.cdp.dialect import get_dialect
from connector.errors import ConfigError
from connector.mapping import compile_mapping

RULES = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: user_id
    session_id: {const: s}
    pos: {const: p}
    currency: {const: EUR}
rules:
  - name: views
    emit:
      type: VIEW
      fields:
        ext: %s
"""


def mapping(tmp_path: Path, ext: str) -> Path:
    path = tmp_path / "rules" / "m.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(RULES % ext, encoding="utf-8")
    return path


def ext_of(path: Path, record: dict[str, object]) -> object:
    mapper = compile_mapping(path, get_dialect("asyncapi"))
    [event] = mapper.map({"user_id": "u", **record}, "t").events
    return json.loads(event.body)["ext"]


def test_a_csv_lookup_file_is_read_relative_to_the_mapping(tmp_path: Path) -> None:
    (tmp_path / "rules" / "prices.csv").parent.mkdir()
    (tmp_path / "rules" / "prices.csv").write_text("sku,price\nA,1.5\nB,2\n")
    path = mapping(
        tmp_path, "{price: {path: sku, transform: [{lookup: {file: prices.csv}}, number]}}"
    )
    assert ext_of(path, {"sku": "B"}) == {"price": 2.0}


def test_json_and_yaml_lookup_files_keep_their_value_types(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "t.json").write_text('{"A": 3}')
    (tmp_path / "rules" / "t.yaml").write_text("A: true\n")
    path = mapping(
        tmp_path,
        "{n: {path: sku, transform: {lookup: {file: t.json}}},"
        " b: {path: sku, transform: {lookup: {file: t.yaml}}}}",
    )
    assert ext_of(path, {"sku": "A"}) == {"n": 3, "b": True}


def test_a_missing_lookup_file_is_a_start_up_error_on_its_line(tmp_path: Path) -> None:
    path = mapping(tmp_path, "{n: {path: sku, transform: {lookup: {file: nope.csv}}}}")
    with pytest.raises(ConfigError) as info:
        compile_mapping(path, get_dialect("asyncapi"))
    message = str(info.value)
    assert f"{path}:13: rule 'views', VIEW, field 'ext.n': lookup file " in message
    assert "nope.csv" in message


def test_lookup_outputs_from_a_file_are_checked_against_the_enum(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    (tmp_path / "ch.yaml").write_text("PHONE: MOBILE\n")
    path.write_text(
        (RULES % "{}").replace(
            "channel: {const: WEB}", "channel: {path: device, transform: {lookup: {file: ch.yaml}}}"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="'MOBILE' is not one of: MOBILE_APP, MOBILE_WEB"):
        compile_mapping(path, get_dialect("asyncapi"))


def test_template_placeholders_take_transforms(tmp_path: Path) -> None:
    path = mapping(
        tmp_path,
        textwrap.dedent(
            """\
            {label: {template: "{name | upper | truncate: 3}-{size | string}"},
                     pipe: {template: "{tags | [0]}"}}"""
        ),
    )
    assert ext_of(path, {"name": "trail", "size": 42, "tags": ["x"]}) == {
        "label": "TRA-42",
        "pipe": "x",
    }
