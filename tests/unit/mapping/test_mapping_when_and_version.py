"""Compiled behaviour the mutation run found untested: a ``when`` list means "any of",
a ``when`` map means "all of", and only ``version: 1`` compiles."""

from __future__ import annotations

import json
import textwrap

import pytest

from connector.errors import ConfigError, MappingError
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


# -- what compiled rules do -------------------------------------------------------------------

D = """\
defaults:
{extra}  fields:
    channel: {{const: WEB}}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {{path: currency, default: EUR}}
rules:
"""


def compiled(rules: str, extra: str = "") -> Mapper:
    text = D.format(extra=extra) + textwrap.indent(textwrap.dedent(rules), "  ")
    return compile_text(text, flat_dialect(), filename="m.yaml")


def test_unmatched_records_are_dead_lettered_unless_on_no_match_says_skip() -> None:
    rules = "- {name: views, when: {event_type: PAGE_VIEW}, emit: {type: VIEW}}\n"
    assert compiled(rules).on_no_match == "dead_letter"
    assert compiled(rules, "  on_no_match: dead_letter\n").on_no_match == "dead_letter"
    assert compiled(rules, "  on_no_match: skip\n").on_no_match == "skip"


def test_a_skip_rule_skips_with_its_name_and_only_on_its_topics() -> None:
    m = compiled(
        """
        - {name: quiet, topics: clicks.test, skip: true}
        - {name: rest, topic_pattern: "clicks\\\\..*", emit: {type: VIEW}}
        """
    )
    quiet = m.map(record("PAGE_VIEW"), "clicks.test")
    assert (quiet.events, quiet.skipped_by) == ((), "quiet")
    assert m.map(record("PAGE_VIEW"), "clicks.live").events[0].rule == "rest"


def test_guest_keys_come_from_the_rule_then_the_defaults_then_browser_id() -> None:
    rules = """
    - {name: by-user, when: {event_type: IDENTIFY}, guest_key: user_id, emit: {type: VIEW}}
    - {name: by-default, emit: {type: VIEW}}
    """
    plain = compiled(rules)
    keyed = compiled(rules, "  guest_key: session_id\n")
    identify = {**record("PAGE_VIEW"), "event_type": "IDENTIFY"}
    assert plain.map(identify, "t").events[0].guest_key == "cust-100042"
    assert keyed.map(identify, "t").events[0].guest_key == "cust-100042"
    assert plain.map(record("PAGE_VIEW"), "t").events[0].guest_key == "b-6d7c1f0e"
    assert keyed.map(record("PAGE_VIEW"), "t").events[0].guest_key == "s-91a2"


def test_a_custom_type_can_be_computed_from_the_record() -> None:
    m = compiled("- {name: c, emit: {custom: {path: payload.page_type}}}\n")
    [event] = m.map(record("PAGE_VIEW"), "t").events
    assert (event.event_type, json.loads(event.body)["type"]) == ("product", "product")


def test_a_failing_condition_names_its_rule_and_its_text() -> None:
    m = compiled('- {name: odd, when: "abs(site) > `1`", emit: {type: VIEW}}\n')
    with pytest.raises(MappingError) as info:
        m.map(record("PAGE_VIEW"), "t")
    assert str(info.value).startswith("rule 'odd': condition 'abs(site) > `1`' failed: ")


def test_a_when_map_compares_numbers_and_booleans_the_jmespath_way() -> None:
    m = mapper(
        """
        - name: big
          when: {payload.total_minor: 28890}
          emit: {type: VIEW}
        - name: flagged
          when: {payload.flag: true}
          emit: {type: VIEW}
        """
    )
    assert rule_of(m, "ORDER_COMPLETED") == "big"
    assert rule_of(m, "ORDER_COMPLETED", payload={"total_minor": 1, "flag": True}) == "flagged"
    assert rule_of(m, "ORDER_COMPLETED", payload={"total_minor": 1, "flag": 1}) is None


def test_a_skip_rule_keeps_its_topic_pattern_and_its_condition_text() -> None:
    m = compiled(
        """
        - {name: quiet, topic_pattern: "test\\\\..*", skip: true}
        - {name: odd, when: "abs(site) > `1`", skip: true}
        """
    )
    assert m.map(record("PAGE_VIEW"), "test.a").skipped_by == "quiet"
    with pytest.raises(MappingError) as info:
        m.map(record("PAGE_VIEW"), "live")
    assert str(info.value).startswith("rule 'odd': condition 'abs(site) > `1`' failed: ")
