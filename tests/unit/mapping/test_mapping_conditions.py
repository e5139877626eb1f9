"""``when`` conditions as the path checker and a failing record see them: each path's
line, its field ``when`` (an error when no known version of the schema has the field),
and the map's text in messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connector.cdp.dialect import get_dialect
from connector.decode.schemas import load_schema
from connector.errors import MappingError
from connector.mapping import compile_text
from connector.mapping.avro_shape import shape_of
from connector.mapping.pathcheck import check_mapper
from tests.unit.mapping_dialect import flat_dialect
from tests.unit.mapping_records import record

SHOES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "shoe-clickstream.avsc"

HEAD = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: user_id
    session_id: {path: session, default: none}
    pos: {const: shoes.example}
    currency: {const: EUR}
rules:
"""  # 8 lines: the rules below start on line 9


def checked(rules: str) -> tuple[list[str], list[str]]:
    text = HEAD + textwrap.indent(textwrap.dedent(rules), "  ")
    mapper = compile_text(text, get_dialect("asyncapi"), filename="shoes.yaml")
    return check_mapper(mapper, shape_of(load_schema(SHOES)))


def test_a_when_expression_on_a_missing_field_is_an_error_at_its_line() -> None:
    [error], warnings = checked(
        """\
        - name: wrapped
          when: gift_wrap
          skip: true
        """
    )
    assert warnings == []
    assert error.startswith("shoes.yaml:10: rule 'wrapped', field 'when': ")
    assert "no field 'gift_wrap'" in error


def test_each_path_of_a_when_map_is_checked_at_its_own_line() -> None:
    [error], warnings = checked(
        """\
        - name: wrapped
          when:
            cart.order_id: 1
            gift_wrap: true
          skip: true
        """
    )
    assert warnings == []
    assert error.startswith("shoes.yaml:12: rule 'wrapped', field 'when': ")
    assert "no field 'gift_wrap'" in error


def test_a_failing_when_map_names_its_entries_as_written() -> None:
    text = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {path: currency, default: EUR}
rules:
  - {name: odd, when: {"abs(site)": 1, event_type: PAGE_VIEW}, emit: {type: VIEW}}
"""
    m = compile_text(text, flat_dialect(), filename="m.yaml")
    with pytest.raises(MappingError) as info:
        m.map(record("PAGE_VIEW"), "t")  # abs() of a string: the lookup itself fails
    written = "abs(site): 1, event_type: 'PAGE_VIEW'"
    assert str(info.value).startswith(f"rule 'odd': condition {written!r} failed: ")
