"""Start-up checks: each problem is a ConfigError naming file, line, rule and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.mapping import compile_mapping, compile_text
from tests.unit.mapping_dialect import flat_dialect, nested_dialect

HEAD = """\
version: 1
defaults:
  fields:
    channel: {const: WEB}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {path: currency, default: EUR}
rules:
"""


def compile_rules(rules: str) -> None:
    compile_text(
        HEAD + textwrap.indent(textwrap.dedent(rules), "  "), flat_dialect(), filename="m.yaml"
    )


def error_of(rules: str) -> str:
    with pytest.raises(ConfigError) as info:
        compile_rules(rules)
    return str(info.value)


def test_valid_rules_compile() -> None:
    compile_rules(
        """
        - name: views
          when: {event_type: PAGE_VIEW}
          emit: {type: VIEW, fields: {page: page.url}}
        """
    )


def test_unknown_event_type_suggests_and_mentions_custom() -> None:
    message = error_of(
        """
        - name: views
          emit: {type: VEIW}
        """
    )
    assert "m.yaml:12: rule 'views'" in message
    assert "unknown event type 'VEIW' (did you mean 'VIEW'?)" in message
    assert "custom: VEIW" in message


def test_field_the_event_does_not_have() -> None:
    message = error_of(
        """
        - name: views
          emit:
            type: VIEW
            fields:
              pgae: page.url
        """
    )
    assert "m.yaml:15: rule 'views', VIEW, field 'pgae'" in message
    assert "View has no field 'pgae' (did you mean 'page'?)" in message


def test_required_field_without_source() -> None:
    message = error_of(
        """
        - name: searches
          emit: {type: SEARCH}
        """
    )
    assert "m.yaml:12: rule 'searches', SEARCH" in message
    assert "required field(s) search_term have no expression" in message


def test_required_nested_field_without_source() -> None:
    message = error_of(
        """
        - name: adds
          emit:
            type: ADD
            fields:
              product: {name: payload.name}
        """
    )
    assert "field 'product'" in message
    assert "required field(s) sku" in message


def test_invalid_expression() -> None:
    message = error_of(
        """
        - name: views
          emit: {type: VIEW, fields: {page: "page..url"}}
        """
    )
    assert "m.yaml:12: rule 'views', VIEW, field 'page': invalid expression 'page..url'" in message


def test_invalid_condition() -> None:
    message = error_of(
        """
        - name: views
          when: "event_type =="
          emit: {type: VIEW}
        """
    )
    assert "m.yaml:12: rule 'views': when: invalid expression" in message


def test_unknown_transform_and_bad_argument() -> None:
    message = error_of(
        """
        - name: orders
          emit:
            type: ORDER_CHECKOUT
            fields:
              reference_id: {path: payload.order_id, transform: uper}
              total_price: {path: payload.total_minor, transform: {minor_units: {exponent: x}}}
        """
    )
    assert (
        "m.yaml:15: rule 'orders', ORDER_CHECKOUT, field 'reference_id': unknown transform"
        in message
    )
    assert "(did you mean 'upper'?)" in message


def test_bad_transform_argument() -> None:
    message = error_of(
        """
        - name: orders
          emit:
            type: ORDER_CHECKOUT
            fields:
              reference_id: payload.order_id
              total_price: {path: payload.total_minor, transform: {minor_units: {exponent: x}}}
        """
    )
    assert "m.yaml:16: rule 'orders', ORDER_CHECKOUT, field 'total_price'" in message
    assert "exponent must be an integer" in message


def test_constant_outside_an_enum_and_lookup_outputs_are_checked() -> None:
    assert "'TV' is not one of" in error_of(
        """
        - name: views
          emit: {type: VIEW, fields: {channel: {const: TV}}}
        """
    )
    assert "'Mael' is not one of" in error_of(
        """
        - name: ids
          emit:
            type: IDENTITY
            fields:
              email: payload.email
              gender: {path: payload.gender, transform: {lookup: {table: {MALE: Mael}}}}
        """
    )


def test_bare_enum_word_is_flagged_as_probably_a_constant() -> None:
    message = error_of(
        """
        - name: views
          emit: {type: VIEW, fields: {channel: WEB}}
        """
    )
    assert "'WEB' is read as a path into the record; for the constant write {const: WEB}" in message


def test_nested_list_field_errors_name_the_element_path() -> None:
    message = error_of(
        """
        - name: orders
          emit:
            type: ORDER_CHECKOUT
            fields:
              reference_id: payload.order_id
              total_price: payload.total
              items:
                each: payload.items
                object: {sku: sku, quantity: quantity, prize: unit_price}
        """
    )
    assert "field 'items[].prize'" in message
    assert "Item has no field 'prize' (did you mean 'price'?)" in message


def test_all_problems_are_reported_at_once() -> None:
    message = error_of(
        """
        - name: a
          emit: {type: VEIW}
        - name: b
          emit: {type: VIEW, fields: {nope: x}}
        - name: a
          skip: true
        """
    )
    assert message.startswith("3 problems in mapping rules:")
    assert "duplicate rule name 'a' (first at line 11)" in message


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("- emit: {type: VIEW}\n", "a rule needs a name"),
        ("- name: x\n", "needs emit: (events to send) or skip: true"),
        ("- name: x\n  skip: true\n  emit: {type: VIEW}\n", "either skips or emits"),
        ("- name: x\n  wen: a\n  skip: true\n", "unknown key 'wen' (did you mean 'when'?)"),
        ("- name: x\n  topic_pattern: '('\n  skip: true\n", "not a valid regular expression"),
        ("- name: x\n  emit: {custom: VIEW}\n", "'VIEW' is a reserved event type"),
        ("- name: x\n  emit: {type: VIEW, custom: X}\n", "an event needs type:"),
        ("- name: x\n  emit: {type: VIEW, fields: {type: a}}\n", "set by type: or custom:"),
        ("- name: x\n  emit: {type: VIEW, fields: {page: [a]}}\n", "a bare list is ambiguous"),
        (
            "- name: x\n  emit: {type: VIEW, fields: {page: {path: a, const: b}}}\n",
            "give exactly one of",
        ),
        ("- name: x\n  emit: {type: VIEW, fields: {page: {pth: a}}}\n", "unknown key(s)"),
        (
            "- name: x\n  emit: {type: VIEW, fields: {page: {template: 'a{'}}}\n",
            "unbalanced brace",
        ),
        (
            "- name: x\n  emit: {type: VIEW, fields: {page: {coalesce: [a]}}}\n",
            "two or more",
        ),
    ],
)
def test_rule_shape_errors(rules: str, expected: str) -> None:
    assert expected in error_of(rules)


def test_defaults_errors() -> None:
    text = HEAD.replace("    pos: site\n", "    pos: site\n    pso: x\n").replace(
        "defaults:\n", "defaults:\n  on_no_match: drop\n  channel: WEB\n"
    )
    with pytest.raises(ConfigError) as info:
        compile_text(text + "  - name: x\n    skip: true\n", flat_dialect(), filename="m.yaml")
    message = str(info.value)
    assert "m.yaml:3: defaults.on_no_match must be skip or dead_letter" in message
    assert (
        "m.yaml:4: defaults: unknown key 'channel' (payload fields go under defaults.fields)"
        in message
    )
    assert "field 'pso': no test-flat event has a field 'pso' (did you mean 'pos'?)" in message


def test_missing_file_and_empty_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        compile_mapping(tmp_path / "nope.yaml", flat_dialect())
    with pytest.raises(ConfigError, match="'rules' must be a non-empty list"):
        compile_text("defaults: {}\nrules: []\n", flat_dialect())


def test_nested_models_are_checked_through_aliases() -> None:
    text = """
defaults:
  fields: {channel: {const: WEB}, browser_id: anonymous_id, pos: site, language: {const: EN},
           currency: {const: EUR}, page: {const: home}}
rules:
  - name: orders
    emit:
      type: ORDER_CHECKOUT
      fields:
        order:
          referenceId: payload.order_id
          orderedAt: {path: occurred_at, transform: iso8601}
          price: payload.total
          currencyCode: payload.currency
          orderItems: {each: payload.items, object: {referenceId: sku}}
"""
    with pytest.raises(ConfigError) as info:
        compile_text(text, nested_dialect(), filename="n.yaml")
    message = str(info.value)
    assert "n.yaml:15: rule 'orders', ORDER_CHECKOUT, field 'order.orderItems[]'" in message
    assert "productId" in message
    fixed = text.replace(
        "{referenceId: sku}",
        "{referenceId: sku, productId: sku, quantity: q,"
        " price: p, currencyCode: $.payload.currency}",
    )
    with pytest.raises(ConfigError, match=r"field 'order'.*required field\(s\) paymentType"):
        compile_text(fixed, nested_dialect(), filename="n.yaml")


def test_every_problem_of_an_event_is_reported_in_one_pass() -> None:
    message = error_of(
        """
        - name: views
          emit:
            type: VIEW
            fields:
              pgae: page.url
              langauge: locale
              ext: {pageType: "payload.("}
        """
    )
    assert message.startswith("3 problems in mapping rules:")
    assert "m.yaml:15: rule 'views', VIEW, field 'pgae': " in message
    assert "m.yaml:16: rule 'views', VIEW, field 'langauge': " in message
    assert "(did you mean 'language'?)" in message
    assert "m.yaml:17: rule 'views', VIEW, field 'ext.pageType': invalid expression" in message


def test_problems_of_a_rule_and_its_events_are_all_reported() -> None:
    message = error_of(
        """
        - name: views
          wehn: {event_type: PAGE_VIEW}
          topic_pattern: "("
          emit:
            - type: VIEW
              fileds: {}
            - type: VIEW
              fields: {pgae: page.url}
        """
    )
    assert message.startswith("4 problems in mapping rules:")
    assert "m.yaml:12: rule 'views': unknown key 'wehn' (did you mean 'when'?)" in message
    assert "m.yaml:13: rule 'views', field 'topic_pattern': " in message
    assert "m.yaml:16: rule 'views': unknown key 'fileds' (did you mean 'fields'?)" in message
    assert "m.yaml:18: rule 'views', VIEW, field 'pgae'" in message


def test_a_bad_default_is_reported_once_as_the_defaults_not_the_first_rule() -> None:
    with pytest.raises(ConfigError) as info:
        compile_text(
            HEAD.replace("pos: site", "pos: {const: 3, transform: uper}")
            + "  - {name: a, emit: {type: VIEW}}\n"
            + "  - {name: b, emit: {type: SEARCH, fields: {}}}\n",
            flat_dialect(),
            filename="m.yaml",
        )
    message = str(info.value)
    assert "m.yaml:7: field 'pos': unknown transform 'uper' (did you mean 'upper'?)" in message
    assert message.count("unknown transform") == 1  # not once per rule
    assert "rule 'a', field 'pos'" not in message
    assert "rule 'b', SEARCH" in message  # b's own problem is still reported
