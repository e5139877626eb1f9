"""Runtime mapping: rule choice, events produced, and MappingErrors naming rule and field."""

from __future__ import annotations

import contextlib
import json
import textwrap
from typing import Any

import pytest

from connector.errors import MappingError
from connector.mapping import NO_MATCH, Mapper, compile_text
from tests.unit.mapping_dialect import flat_dialect, nested_dialect
from tests.unit.mapping_records import record

HEAD = """\
defaults:
  on_no_match: {on_no_match}
  fields:
    channel: {{const: WEB}}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {{path: currency, default: EUR}}
rules:
"""


def mapper(rules: str, on_no_match: str = "skip") -> Mapper:
    text = HEAD.format(on_no_match=on_no_match) + textwrap.indent(textwrap.dedent(rules), "  ")
    return compile_text(text, flat_dialect(), filename="m.yaml")


def bodies(m: Mapper, rec: dict[str, Any], topic: str = "clickstream") -> list[dict[str, Any]]:
    return [json.loads(e.body) for e in m.map(rec, topic).events]


VIEW_RULE = """
- name: views
  when: {event_type: PAGE_VIEW}
  emit: {type: VIEW, fields: {page: page.url}}
"""


def test_defaults_fill_every_event_and_body_is_the_validated_json() -> None:
    result = mapper(VIEW_RULE).map(record("PAGE_VIEW"), "clickstream")
    (event,) = result.events
    assert result.skipped_by is None
    assert (event.rule, event.event_type, event.guest_key) == ("views", "VIEW", "b-6d7c1f0e")
    assert event.body == (
        b'{"channel":"WEB","type":"VIEW","browser_id":"b-6d7c1f0e","session_id":"s-91a2",'
        b'"pos":"shop.example.com","currency":"GBP",'
        b'"page":"https://shop.example.com/p/trail-runner-2"}'
    )


def test_first_matching_rule_wins() -> None:
    m = mapper(
        """
        - name: first
          when: "event_type == 'PAGE_VIEW'"
          emit: {type: VIEW, fields: {ext: {n: {const: 1}}}}
        - name: second
          emit: {type: VIEW, fields: {ext: {n: {const: 2}}}}
        """
    )
    assert bodies(m, record("PAGE_VIEW"))[0]["ext"] == {"n": 1}
    assert bodies(m, record("SEARCH"))[0]["ext"] == {"n": 2}


def test_topic_filters_by_name_and_pattern() -> None:
    m = mapper(
        """
        - name: eu
          topics: [clicks.eu]
          emit: {type: VIEW, fields: {ext: {r: {const: eu}}}}
        - name: any-clicks
          topic_pattern: "clicks\\\\..*"
          emit: {type: VIEW, fields: {ext: {r: {const: other}}}}
        """
    )
    assert bodies(m, record("PAGE_VIEW"), "clicks.eu")[0]["ext"] == {"r": "eu"}
    assert bodies(m, record("PAGE_VIEW"), "clicks.us")[0]["ext"] == {"r": "other"}
    assert m.map(record("PAGE_VIEW"), "clicks").skipped_by == NO_MATCH  # fullmatch


def test_skip_rule_and_no_match_modes() -> None:
    rules = (
        textwrap.dedent(
            """
            - name: bots
              when: "user_agent && contains(user_agent, 'bot')"
              skip: true
            """
        )
        + VIEW_RULE
    )
    bot = record("PAGE_VIEW", user_agent="Googlebot/2.1")
    assert mapper(rules).map(bot, "t").skipped_by == "bots"
    assert mapper(rules).map(record("SEARCH"), "t").events == ()
    assert mapper(rules).map(record("SEARCH"), "t").skipped_by == NO_MATCH
    with pytest.raises(MappingError, match="no rule matched") as info:
        mapper(rules, on_no_match="dead_letter").map(record("SEARCH"), "t")
    assert info.value.rule is None


def test_one_record_emits_several_events_in_order_with_event_conditions() -> None:
    m = mapper(
        """
        - name: order
          when: {event_type: [ORDER_COMPLETED]}
          emit:
            - type: IDENTITY
              when: user_id
              fields: {email: {template: "{user_id}@example.org"}}
            - type: ORDER_CHECKOUT
              fields:
                reference_id: payload.order_id
                total_price: {path: payload.total_minor, transform: minor_units}
        """
    )
    events = m.map(record("ORDER_COMPLETED"), "t").events
    assert [e.event_type for e in events] == ["IDENTITY", "ORDER_CHECKOUT"]
    assert json.loads(events[0].body)["email"] == "cust-100042@example.org"
    anonymous = m.map(record("ORDER_COMPLETED", user_id=None), "t").events
    assert [e.event_type for e in anonymous] == ["ORDER_CHECKOUT"]


def test_expressions_constants_coalesce_default_template_and_root_paths() -> None:
    m = mapper(
        """
        - name: v
          emit:
            type: VIEW
            fields:
              language: {path: locale, transform: [{split: "-"}, upper]}
              page: {template: "https://{site}/x?q={payload.query}"}
              ext:
                who: {coalesce: [user_id, anonymous_id]}
                lit: "'literal'"
                num: 3
                missing: {path: nope, default: fallback}
                gone: nope
                first: payload.tags[0]
        """
    )
    rec = record("SEARCH", user_id=None)
    rec["payload"]["tags"] = ["t1"]
    body = bodies(m, rec)[0]
    assert body["language"] == "EN"
    assert body["page"] == "https://shop.example.com/x?q=rain jacket"
    assert body["ext"] == {
        "who": "b-6d7c1f0e",
        "lit": "literal",
        "num": 3,
        "missing": "fallback",
        "first": "t1",
    }


def test_null_in_a_rule_removes_a_default() -> None:
    m = mapper(
        """
        - name: v
          emit: {type: VIEW, fields: {currency: {const: USD}, page: null}}
        """
    )
    body = bodies(m, record("PAGE_VIEW"))[0]
    assert body["currency"] == "USD" and "page" not in body


def test_custom_events_static_and_computed() -> None:
    m = mapper(
        """
        - name: static
          when: {event_type: PAGE_VIEW}
          emit: {custom: MY_EVENT}
        - name: computed
          emit:
            custom: {path: payload.name, transform: upper}
            fields: {ext: payload.attributes}
        """
    )
    assert m.map(record("PAGE_VIEW"), "t").events[0].event_type == "MY_EVENT"
    event = m.map(record("CUSTOM"), "t").events[0]
    assert event.event_type == "WISHLIST_ADDED"
    assert json.loads(event.body)["ext"] == {"source": "web", "variant": "B"}
    reserved = record("CUSTOM")
    reserved["payload"]["name"] = "view"
    with pytest.raises(MappingError, match="field 'type': custom event name 'VIEW' is a reserved"):
        m.map(reserved, "t")


def test_guest_key_from_defaults_or_rule() -> None:
    rules = VIEW_RULE + textwrap.dedent(
        """
        - name: by-user
          guest_key: user_id
          emit: {type: SEARCH, fields: {search_term: payload.query}}
        """
    )
    m = mapper(rules)
    assert m.map(record("PAGE_VIEW"), "t").events[0].guest_key == "b-6d7c1f0e"
    assert m.map(record("SEARCH"), "t").events[0].guest_key == "cust-100042"
    with pytest.raises(MappingError, match="rule 'by-user': guest_key is missing"):
        m.map(record("SEARCH", user_id=None), "t")


ORDER_RULE = """
- name: orders
  emit:
    type: ORDER_CHECKOUT
    fields:
      reference_id: payload.order_id
      total_price: {path: payload.total_minor, transform: minor_units}
      ordered_at: {path: occurred_at, transform: iso8601}
      items:
        each: payload.items
        object:
          sku: sku
          quantity: quantity
          price: {path: unit_price_minor, transform: minor_units}
          category: category
"""


def test_list_mapping_maps_each_element() -> None:
    body = bodies(mapper(ORDER_RULE), record("ORDER_COMPLETED"))[0]
    assert body["ordered_at"] == "2026-11-02T08:15:30.123Z"
    assert body["total_price"] == 288.9
    assert body["items"] == [
        {"sku": "RUN-1042-42", "quantity": 2, "price": 119.95, "category": "shoes/running"},
        {"sku": "TEE-0007-M", "quantity": 1, "price": 49.0},
    ]


def test_missing_required_source_is_a_mapping_error_naming_rule_and_field() -> None:
    rec = record("ORDER_COMPLETED")
    del rec["payload"]["order_id"]
    with pytest.raises(MappingError) as info:
        mapper(ORDER_RULE).map(rec, "t")
    assert str(info.value) == (
        "rule 'orders', ORDER_CHECKOUT: field 'reference_id': required, but "
        "payload.order_id is missing or null"
    )
    assert info.value.rule == "orders"


def test_element_errors_name_the_index() -> None:
    rec = record("ORDER_COMPLETED")
    rec["payload"]["items"][1]["unit_price_minor"] = "lots"
    with pytest.raises(MappingError, match=r"field 'items\[1\].price': unit_price_minor: 'lots'"):
        mapper(ORDER_RULE).map(rec, "t")
    rec["payload"]["items"] = {"not": "a list"}
    with pytest.raises(MappingError, match=r"field 'items': payload\.items is a dict, not a list"):
        mapper(ORDER_RULE).map(rec, "t")


def test_payload_failing_the_model_is_a_mapping_error() -> None:
    rec = record("ORDER_COMPLETED")
    rec["payload"]["items"][0]["quantity"] = 0
    with pytest.raises(MappingError) as info:
        mapper(ORDER_RULE).map(rec, "t")
    assert "rule 'orders', ORDER_CHECKOUT: the payload fails the test-flat model" in str(info.value)
    assert "field 'items[0].quantity': expected a number >= 1" in str(info.value)


def test_failing_condition_and_transform_are_mapping_errors() -> None:
    m = mapper(
        """
        - name: c
          when: "starts_with(user_id, 'cust')"
          emit: {type: VIEW, fields: {language: {path: locale, transform: upper}}}
        """
    )
    with pytest.raises(MappingError, match=r"rule 'c': condition .* failed"):
        m.map(record("PAGE_VIEW", user_id=None), "t")
    with pytest.raises(MappingError, match="field 'language': locale: upper expects a string"):
        m.map(record("PAGE_VIEW", locale=5), "t")


def test_no_other_exception_escapes_for_odd_records() -> None:
    m = mapper(VIEW_RULE + ORDER_RULE)
    odd: list[dict[str, Any]] = [
        {},
        {"event_type": "PAGE_VIEW"},
        {"event_type": "PAGE_VIEW", "anonymous_id": 5, "session_id": [], "site": {}},
        {"event_type": "X", "payload": "text", "occurred_at": "never"},
        {"event_type": "X", "payload": {"items": [None, 3]}, "occurred_at": float("nan")},
    ]
    for rec in odd:
        with contextlib.suppress(MappingError):  # anything else fails the test
            m.map(rec, "t")


def test_nested_dialect_objects_lists_and_aliases() -> None:
    text = """
defaults:
  fields: {channel: {const: WEB}, browser_id: anonymous_id, pos: site,
           language: {path: locale, transform: [{split: "-"}, upper]},
           currency: currency, page: {const: checkout}}
rules:
  - name: order
    when: {event_type: ORDER_COMPLETED}
    emit:
      - type: IDENTITY
        when: user_id
        fields:
          identifiers:
            list:
              - {provider: {const: user_id}, id: user_id}
              - {provider: {const: browser}, id: {coalesce: [nope, anonymous_id]}}
          street: {list: [page.title, {const: "Main St"}]}
      - type: ORDER_CHECKOUT
        fields:
          order:
            referenceId: payload.order_id
            orderedAt: {path: occurred_at, transform: {strftime: "%Y-%m-%dT%H:%M"}}
            price: {path: payload.total_minor, transform: minor_units}
            currencyCode: payload.currency
            paymentType: {path: payload.payment_type,
                          transform: {lookup: {table: {CARD: Card}, default: Other}}}
            orderItems:
              each: payload.items
              object:
                referenceId: {template: "{$.payload.order_id}-{sku}"}
                productId: sku
                quantity: quantity
                price: {path: unit_price_minor, transform: minor_units}
                currencyCode: $.payload.currency
            extensions: {status: payload.status}
"""
    m = compile_text(text, nested_dialect())
    identity, order = (json.loads(e.body) for e in m.map(record("ORDER_COMPLETED"), "t").events)
    assert identity["identifiers"] == [
        {"provider": "user_id", "id": "cust-100042"},
        {"provider": "browser", "id": "b-6d7c1f0e"},
    ]
    assert identity["street"] == ["Trail Runner 2", "Main St"]
    assert order["order"]["orderedAt"] == "2026-11-02T08:15"
    assert order["order"]["paymentType"] == "Card"
    assert order["order"]["orderItems"][1] == {
        "referenceId": "ORD-12345678-TEE-0007-M",
        "productId": "TEE-0007-M",
        "quantity": 1,
        "price": 49.0,
        "currencyCode": "GBP",
    }
    assert order["order"]["extensions"] == {"status": "PLACED"}


def test_a_required_field_read_from_a_mistyped_path_names_the_close_one() -> None:
    m = mapper(
        """
        - name: identify
          emit: {type: IDENTITY, fields: {email: payload.emial}}
        """
    )
    with pytest.raises(MappingError) as info:
        m.map(record("IDENTIFY"), "clickstream")
    assert "field 'email': required, but payload.emial is missing or null" in str(info.value)
    assert "(the record has 'payload.email')" in str(info.value)


def test_no_rule_matched_names_the_rules_tried_not_a_sample_schema_field() -> None:
    m = mapper(
        """
        - name: views
          when: {event_type: PAGE_VIEW}
          emit: {type: VIEW}
        """,
        on_no_match="dead_letter",
    )
    with pytest.raises(MappingError) as info:
        m.map({"kind": "x", "event_type": "SEARCH"}, "shoes")
    assert str(info.value) == (
        "no rule matched (topic 'shoes'; rules tried: 'views') and on_no_match is dead_letter"
    )
