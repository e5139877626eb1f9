"""Record paths held against a writer schema: missing paths, wrong types, suggestions."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from connector.cdp.dialect import get_dialect
from connector.decode.schemas import load_schema
from connector.mapping import compile_text
from connector.mapping.avro_shape import shape_of
from connector.mapping.pathcheck import check_mapper, known_paths

ROOT = Path(__file__).resolve().parents[3]
SHOES = ROOT / "docs" / "examples" / "shoe-clickstream.avsc"

HEAD = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: user_id
    session_id: {path: session, default: none}
    pos: {const: shoes.example}
    currency: {const: EUR}
rules:
"""


def problems(rules: str, *, dialect: str = "asyncapi", topic: str | None = None) -> list[str]:
    text = HEAD + textwrap.indent(textwrap.dedent(rules), "  ")
    mapper = compile_text(text, get_dialect(dialect), filename="shoes.yaml")
    errors, warnings = check_mapper(mapper, shape_of(load_schema(SHOES)), topic)
    return errors + warnings


def test_a_mistyped_optional_path_is_an_error_with_the_closest_real_path() -> None:
    [message] = problems(
        """
        - name: views
          emit: {type: VIEW, fields: {page: page_ulr}}
        """
    )
    assert message.startswith("shoes.yaml:11: rule 'views', VIEW, field 'page': ")
    assert "ShoeClick has no field 'page_ulr' (did you mean 'page_url'?)" in message


def test_a_nested_typo_suggests_the_nested_path() -> None:
    [message] = problems(
        """
        - name: orders
          when: cart
          emit:
            type: ORDER_CHECKOUT
            fields:
              reference_id: {path: cart.order_id, transform: string}
              total_price: {const: 1}
              items:
                each: cart.lines
                object: {sku: prodct_id, quantity: quantity, price: {const: 1}}
        """
    )
    assert "shoes.yaml:19: rule 'orders', ORDER_CHECKOUT, field 'items[].sku'" in message
    assert "Line has no field 'prodct_id' (did you mean 'product_id'?)" in message


def test_a_path_under_the_wrong_parent_suggests_where_it_lives() -> None:
    [message] = problems(
        """
        - name: orders
          when: order_id
          skip: true
        """
    )
    assert "field 'when'" in message and "(did you mean 'cart.order_id'?)" in message


def test_an_integer_into_a_date_time_needs_a_transform() -> None:
    [message] = problems(
        """
        - name: orders
          when: cart
          emit:
            type: ORDER_CHECKOUT
            fields:
              reference_id: {path: cart.order_id, transform: string}
              total_price: {const: 1}
              ordered_at: cart.order_id
        """
    )
    assert "field 'ordered_at': 'cart.order_id' is integer or null" in message
    assert "the field takes a datetime: add transform: {iso8601: {unit: ms}}" in message


def test_a_timestamp_feeds_a_date_time_and_a_transform_silences_the_type_check() -> None:
    assert (
        problems(
            """
            - name: orders
              when: cart
              emit:
                type: ORDER_CHECKOUT
                fields:
                  reference_id: {path: cart.order_id, transform: string}
                  total_price: {path: view_time}
                  ordered_at: ts
            """
        )
        == []
    )


def test_a_number_into_a_string_field_is_flagged() -> None:
    [message] = problems(
        """
        - name: orders
          when: cart
          emit:
            type: ORDER_CHECKOUT
            fields: {reference_id: cart.order_id, total_price: {const: 1}}
        """
    )
    assert "field 'reference_id'" in message and "add transform: string" in message


def test_enum_symbols_outside_the_allowed_values_are_flagged() -> None:
    [message] = problems(
        """
        - name: views
          emit: {type: VIEW, fields: {channel: device}}
        """
    )
    assert "symbol(s) DESKTOP, PHONE, TABLET are not allowed values" in message


def test_a_list_path_read_as_an_object_says_how_to_index_it() -> None:
    [message] = problems(
        """
        - name: views
          emit: {type: VIEW, fields: {ext: {size: cart.lines.size}}}
        """
    )
    assert "'cart.lines' is array of record Line" in message and "[0].field" in message


def test_template_placeholders_and_alternatives_are_checked() -> None:
    found = problems(
        """
        - name: views
          emit:
            type: VIEW
            fields:
              page: {template: "https://shoes.example{pag_url}"}
              ext: {product: "product_id || produc"}
        """
    )
    assert len(found) == 2
    assert "no field 'pag_url' (did you mean 'page_url'?)" in found[0]
    assert "no field 'produc' (did you mean 'product_id'?)" in found[1]


def test_a_bad_default_is_reported_once_as_the_defaults() -> None:
    text = HEAD.replace("browser_id: user_id", "browser_id: usr_id") + textwrap.indent(
        textwrap.dedent(
            """
            - name: a
              emit: {type: VIEW}
            - name: b
              emit: {type: VIEW}
            """
        ),
        "  ",
    )
    mapper = compile_text(text, get_dialect("asyncapi"), filename="shoes.yaml")
    [message], [] = check_mapper(mapper, shape_of(load_schema(SHOES)))
    assert message.startswith("shoes.yaml:4: field 'browser_id': ")
    assert "(did you mean 'user_id'?)" in message


def test_only_rules_for_the_topic_are_checked() -> None:
    rules = """
        - name: views
          topics: [other]
          emit: {type: VIEW, fields: {page: page_ulr}}
        """
    assert problems(rules, topic="shoes") == []
    assert len(problems(rules, topic="other")) == 1


def test_paths_of_our_sample_schema_pass_with_the_example_mapping() -> None:
    from connector.mapping import compile_mapping

    mapper = compile_mapping(ROOT / "config" / "mappings.example.yaml", get_dialect("asyncapi"))
    shape = shape_of(json.loads((ROOT / "avro" / "clickstream-v2.avsc").read_text()))
    assert check_mapper(mapper, shape) == ([], [])
    assert check_mapper(
        mapper, shape_of(json.loads((ROOT / "avro" / "clickstream-v3.avsc").read_text()))
    ) == ([], [])
    # The sitecore example maps page.utm (UTM fields on VIEW), which v3 added.
    v3 = shape_of(json.loads((ROOT / "avro" / "clickstream-v3.avsc").read_text()))
    sitecore = compile_mapping(ROOT / "config" / "mappings.sitecore.yaml", get_dialect("sitecore"))
    assert check_mapper(sitecore, v3) == ([], [])
    errors, _ = check_mapper(sitecore, shape)
    assert errors and all("page.utm" in e for e in errors)


def test_a_condition_on_a_field_only_a_later_version_has_is_a_warning_naming_it() -> None:
    from connector.mapping import compile_mapping

    mapper = compile_mapping(ROOT / "config" / "mappings.example.yaml", get_dialect("asyncapi"))
    v1 = shape_of(json.loads((ROOT / "avro" / "clickstream-v1.avsc").read_text()))
    v2 = shape_of(json.loads((ROOT / "avro" / "clickstream-v2.avsc").read_text()))
    errors, [warning] = check_mapper(mapper, v1, versions=[("version 2 of subject s", v2)])
    assert errors == []
    assert "rule 'no-consent', field 'when'" in warning
    assert warning.endswith(
        "ClickEvent has no field 'consent_given'; version 2 of subject s has it: "
        "null for records written with this version"
    )


def test_a_condition_on_a_field_no_known_version_has_is_an_error() -> None:
    from connector.mapping import compile_mapping

    mapper = compile_mapping(ROOT / "config" / "mappings.example.yaml", get_dialect("asyncapi"))
    v1 = shape_of(json.loads((ROOT / "avro" / "clickstream-v1.avsc").read_text()))
    [error], warnings = check_mapper(mapper, v1, versions=[("itself", v1)])
    assert warnings == []
    assert "rule 'no-consent', field 'when'" in error
    assert error.endswith("ClickEvent has no field 'consent_given'")


def test_known_paths_walk_records_arrays_and_unions() -> None:
    paths = known_paths(shape_of(load_schema(SHOES)))
    assert {"page_url", "cart.order_id", "cart.lines[].size"} <= set(paths)


def test_named_types_reused_by_name_and_recursive_types_are_followed() -> None:
    from connector.decode.schemas import prepare_schema

    schema = prepare_schema(
        {
            "type": "record",
            "name": "Order",
            "namespace": "shop",
            "fields": [
                {
                    "name": "billing",
                    "type": {
                        "type": "record",
                        "name": "Address",
                        "fields": [{"name": "city", "type": "string"}],
                    },
                },
                {"name": "shipping", "type": "Address"},
                {"name": "parent", "type": ["null", "Order"], "default": None},
            ],
        }
    )
    shape = shape_of(schema)
    assert {"billing.city", "shipping.city", "parent.shipping.city"} <= set(known_paths(shape))
