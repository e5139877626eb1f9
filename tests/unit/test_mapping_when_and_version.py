"""Compiled behaviour the mutation run found untested: a ``when`` list means "any of",
a ``when`` map means "all of", and only ``version: 1`` compiles."""

from __future__ import annotations

import textwrap

import pytest

from connector.errors import ConfigError
from connector.mapping import Mapper, compile_text
from tests.unit.mapping_dialect import flat_dialect
from tests.unit.mapping_records import record

HEAD = """\
{version}defaults:
  on_no_match: skip
  fields:
    channel: {{const: WEB}}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {{path: currency, default: EUR}}
rules:
"""


def mapper(rules: str, version: str = "") -> Mapper:
    text = HEAD.format(version=version) + textwrap.indent(textwrap.dedent(rules), "  ")
    return compile_text(text, flat_dialect(), filename="m.yaml")


def rule_of(m: Mapper, event_type: str, **changes: object) -> str | None:
    result = m.map({**record(event_type), **changes}, "clickstream")
    return result.events[0].rule if result.events else None


def test_a_when_list_matches_a_record_equal_to_any_listed_value() -> None:
    m = mapper(
        """
        - name: browse
          when: {event_type: [PAGE_VIEW, SEARCH]}
          emit: {type: VIEW}
        """
    )
    assert rule_of(m, "PAGE_VIEW") == "browse"
    assert rule_of(m, "SEARCH") == "browse"
    assert rule_of(m, "PRODUCT_ADDED") is None


def test_a_when_map_needs_every_entry_to_hold() -> None:
    m = mapper(
        """
        - name: uk-views
          when: {event_type: PAGE_VIEW, currency: [GBP]}
          emit: {type: VIEW}
        """
    )
    assert rule_of(m, "PAGE_VIEW", currency="GBP") == "uk-views"
    assert rule_of(m, "PAGE_VIEW", currency="EUR") is None
    assert rule_of(m, "SEARCH", currency="GBP") is None


@pytest.mark.parametrize("version", ["version: 1\n", ""])
def test_version_1_or_none_compiles(version: str) -> None:
    m = mapper("- name: all\n  emit: {type: VIEW}\n", version=version)
    assert m.rule_names == ("all",)


@pytest.mark.parametrize("version", ["version: 2\n", "version: 0\n", "version: '1'\n"])
def test_any_other_version_is_refused_naming_its_line(version: str) -> None:
    with pytest.raises(ConfigError) as info:
        mapper("- name: all\n  emit: {type: VIEW}\n", version=version)
    assert "m.yaml:1: only version: 1 is supported" in str(info.value)
