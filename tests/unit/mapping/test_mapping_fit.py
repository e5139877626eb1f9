"""What the compiler knows before the first record (issue 27), checked where it is
decided: values against fields in words (``fit``), the points of sale, the dialect a
mapping declares, keys in the wrong place, and the paths of input records."""

from __future__ import annotations

import logging
import textwrap
from typing import Any

import pytest

from connector.cdp import models, sitecore_models
from connector.cdp.dialect import ASYNCAPI, SITECORE
from connector.errors import ConfigError, MappingError
from connector.mapping import PointsOfSale, UnknownPointOfSale, compile_text
from connector.mapping.avro_shape import shape_of_values
from connector.mapping.fit import fix_hint, key_problem, problem
from connector.mapping.pathcheck import check_input
from connector.mapping.targets import model_fields

SITECORE_HEAD = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: partyId
    pos: POS
    currency: {const: EUR}
    language: {const: EN}
    page: location
rules:
"""


def _target(model: Any, field: str) -> Any:
    return model_fields(model)[field].target


def _sitecore(rules: str, pos: str = "site", **options: Any) -> Any:
    text = SITECORE_HEAD.replace("POS", pos) + textwrap.indent(textwrap.dedent(rules), "  ")
    return compile_text(text, SITECORE, filename="m.yaml", **options)


def _refused(rules: str, pos: str = "site", **options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _sitecore(rules, pos, **options)
    return str(info.value)


# -- fit: a value against a field, in words ----------------------------------------------


@pytest.mark.parametrize(
    ("model", "field", "value", "said"),
    [
        (sitecore_models.BaseEvent, "language", "en",
         "'en': expected uppercase ISO 639-1 code, e.g. EN — or add transform: upper"),
        (sitecore_models.BaseEvent, "currency", "eur",
         "'eur': expected uppercase ISO 4217 code, e.g. EUR — or add transform: upper"),
        (models.OrderItem, "quantity", "one", "'one': expected an integer"),
        (models.OrderItem, "quantity", 0, "0: expected a number >= 1"),
        (sitecore_models.Order, "price", "12.5",
         "'12.5': expected a number — or add transform: number"),
        (sitecore_models.Order, "orderedAt", 1764661530123,
         "1764661530123: expected text (UTC date-time, ISO 8601 ending in Z (or +00:00), "
         "e.g. 2026-11-02T08:15:30.123Z) — or add transform: {iso8601: {unit: ms}}"),
        (sitecore_models.IdentityEvent, "dob", "2026-11-02",
         "'2026-11-02': expected date and time to the minute, YYYY-MM-DDThh:mm, e.g. "
         '2026-11-02T08:15 (transform: {strftime: "%Y-%m-%dT%H:%M"})'),
        (models.IdentityEvent, "email", "ada",
         "'ada': expected email address, e.g. ada@example.com"),
        (models.BaseEvent, "channel", "web",
         "'web' is not one of: MOBILE_APP, MOBILE_WEB, SERVER_SIDE, WEB — or add transform: upper"),
        (sitecore_models.BaseEvent, "pos", "", "'': expected non-empty text"),
        (models.BaseEvent, "ext", {"a": [1]}, "{'a': [1]}: a: expected true or false, an integer, "
         "a number or text"),
    ],
    ids=lambda v: str(v)[:30],
)  # fmt: skip
def test_a_value_that_does_not_fit_says_what_was_expected_in_words(
    model: Any, field: str, value: Any, said: str
) -> None:
    assert problem(value, _target(model, field)) == said


def test_no_message_shows_a_pattern() -> None:
    for value in ("en", "x", "2026", "wish"):
        for model, field in ((sitecore_models.BaseEvent, "language"),
                             (sitecore_models.Order, "orderedAt"),
                             (sitecore_models.IdentityEvent, "country"),
                             (sitecore_models.CustomEvent, "type"),
                             (models.BaseEvent, "page")):  # fmt: skip
            said = problem(value, _target(model, field)) or ""
            assert "^" not in said and "\\d" not in said and "pattern" not in said, said


def test_a_value_that_fits_has_no_problem_and_no_hint() -> None:
    assert problem("EN", _target(sitecore_models.BaseEvent, "language")) is None
    assert fix_hint("EN", _target(sitecore_models.BaseEvent, "language")) == ""


def test_ext_names_are_camel_case_and_the_camel_case_spelling_is_offered() -> None:
    ext = _target(models.BaseEvent, "ext")
    assert key_problem("pageType", ext) is None
    assert key_problem("view_seconds", ext) == (
        "'view_seconds': expected camelCase (a lowercase letter, then letters and digits), "
        "e.g. pageType — write viewSeconds"
    )


# -- the compiler: every known value held against its field -------------------------------


def test_a_constant_through_its_transforms_is_checked_after_them() -> None:
    _sitecore("- {name: v, emit: {type: VIEW, fields: {language: {const: en, transform: upper}}}}")
    said = _refused(
        "- {name: v, emit: {type: VIEW, fields: {language: {const: english, transform: upper}}}}"
    )
    assert "field 'language': 'ENGLISH': expected uppercase ISO 639-1 code" in said


def test_a_default_is_checked_against_the_field() -> None:
    said = _refused(
        "- {name: v, emit: {type: VIEW, fields: {language: {path: lang, default: en}}}}"
    )
    assert "m.yaml:10: rule 'v', VIEW, field 'language': 'en': expected uppercase ISO 639-1" in said


def test_lookup_values_are_checked_through_the_transforms_after_the_lookup() -> None:
    rules = """\
    - name: orders
      emit:
        type: ORDER_CHECKOUT
        fields:
          order:
            referenceId: id
            orderedAt: at
            status: {const: PURCHASED}
            currencyCode: {const: EUR}
            price: {path: total, transform: [{lookup: {table: {a: "1.5", b: lots}}}, number]}
            paymentType: {const: Card}
            cardType: {const: Visa}
    """
    said = _refused(rules)
    assert (
        "field 'order.price': lookup value 'lots': the next transform fails: 'lots' is not a number"
        in said
    )


def test_every_item_of_a_list_is_checked_not_only_the_first() -> None:
    rules = """\
    - name: id
      emit:
        type: IDENTITY
        fields:
          identifiers:
            list:
              - {id: a, provider: {const: ""}}
              - {id: b, provider: b, expiry_date: {const: "2026-01-01"}}
    """
    said = _refused(rules)
    assert "field 'identifiers[0].provider': '': expected non-empty text" in said
    assert "field 'identifiers[1].expiry_date': '2026-01-01': expected date and time" in said


def test_order_extension_attributes_follow_the_models_rules_and_name_key_are_reserved() -> None:
    rules = """\
    - name: orders
      emit:
        type: ORDER_CHECKOUT
        fields:
          order:
            referenceId: id
            orderedAt: at
            status: {const: PURCHASED}
            currencyCode: {const: EUR}
            price: total
            paymentType: {const: PayPal}
            extensions:
              list:
                - {gift_wrap: wrap}
                - {name: {const: colour}}
    """
    said = _refused(rules)
    assert (
        "field 'order.extensions[0]': attribute name 'gift_wrap' is not alphanumeric camelCase"
        in said
    )
    assert (
        "field 'order.extensions[1].name': 'colour' is not one of: ext (key, name are reserved "
        "in OrderExtension: give the attribute another name)"
    ) in said


def test_a_fixed_custom_name_is_checked_against_the_dialect() -> None:
    said = _refused("- {name: c, emit: {custom: wishlist_added}}")
    assert "field 'custom': custom event name 'wishlist_added': expected uppercase" in said
    asyncapi = (
        "rules: [{name: c, emit: {custom: wishlist_added, fields: {channel: {const: WEB}, "
        "browser_id: b, session_id: s, pos: p, currency: {const: EUR}}}}]"
    )
    compile_text(asyncapi, ASYNCAPI)  # any name of 1 to 50 characters there


# -- points of sale ----------------------------------------------------------------------

POS = PointsOfSale.of(["shop.example.com", "shop.example.de"])


def test_a_constant_pos_must_be_one_of_the_tenants() -> None:
    rules = "- {name: v, emit: {type: VIEW}}"
    _sitecore(rules, pos="{const: shop.example.de}", points_of_sale=POS)
    said = _refused(rules, pos="{const: shop.exmaple.com}", points_of_sale=POS)
    assert said.endswith(
        "m.yaml:5: field 'pos': 'shop.exmaple.com' is not in cdp.points_of_sale "
        "(shop.example.com, shop.example.de) (did you mean 'shop.example.com'?)"
    )


def test_lookup_values_for_pos_must_be_the_tenants() -> None:
    said = _refused(
        "- {name: v, emit: {type: VIEW}}",
        pos="{path: site, transform: {lookup: {table: {de: shop.example.de, fr: shop.nl}}}}",
        points_of_sale=POS,
    )
    assert "lookup value 'shop.nl' is not in cdp.points_of_sale" in said


def test_a_pos_read_from_the_record_is_checked_per_record() -> None:
    mapper = _sitecore("- {name: v, emit: {type: VIEW}}", points_of_sale=POS)
    record = {"partyId": "b", "location": "home", "site": "shop.example.com"}
    assert mapper.map(record, "t").events
    with pytest.raises(UnknownPointOfSale) as info:
        mapper.map({**record, "site": "shop.example.nl"}, "t")
    assert info.value.value == "shop.example.nl"
    assert info.value.rule == "v"
    assert str(info.value) == (
        "rule 'v', VIEW: field 'pos': 'shop.example.nl' is not in cdp.points_of_sale "
        "(shop.example.com, shop.example.de) (did you mean 'shop.example.de'?); the CDP would "
        "accept the event and drop it"
    )


def test_a_pos_that_is_not_text_is_left_to_the_model() -> None:
    mapper = _sitecore("- {name: v, emit: {type: VIEW}}", points_of_sale=POS)
    with pytest.raises(MappingError) as info:
        mapper.map({"partyId": "b", "location": "home", "site": {"a": 1}}, "t")
    assert not isinstance(info.value, UnknownPointOfSale)
    assert "field 'pos': expected text" in str(info.value)


def test_without_points_of_sale_pos_is_not_checked() -> None:
    mapper = _sitecore("- {name: v, emit: {type: VIEW}}")
    assert mapper.points_of_sale is None
    assert mapper.map({"partyId": "b", "location": "home", "site": "anything"}, "t").events


# -- a value read per record: the model's refusal in words, never echoing the value --------


def test_a_pattern_refused_per_record_is_said_in_words_without_the_value() -> None:
    mapper = _sitecore("- {name: v, emit: {type: VIEW, fields: {language: lang}}}")
    with pytest.raises(MappingError) as info:
        mapper.map({"partyId": "b", "location": "home", "site": "s", "lang": "secret-en"}, "t")
    said = str(info.value)
    assert said == (
        "rule 'v', VIEW: the payload fails the sitecore model: field 'language': expected "
        "uppercase ISO 639-1 code, e.g. EN"
    )


# -- the dialect a mapping is written for --------------------------------------------------


def test_a_declared_dialect_that_differs_is_one_error() -> None:
    text = "dialect: sitecore\nrules: [{name: v, skip: true}]\n"
    compile_text(text, SITECORE, others=[ASYNCAPI])
    with pytest.raises(ConfigError) as info:
        compile_text(text, ASYNCAPI, filename="m.yaml", others=[SITECORE], dialect_from="--dialect")
    assert str(info.value) == (
        "m.yaml:1: the mapping is written for the sitecore dialect (dialect: sitecore), but "
        "--dialect is asyncapi: make the two agree"
    )


def test_rules_that_compile_for_another_dialect_say_so_last() -> None:
    text = SITECORE_HEAD.replace("POS", "site") + "  - {name: v, emit: {type: VIEW}}\n"
    with pytest.raises(ConfigError) as info:
        compile_text(text, ASYNCAPI, others=[SITECORE])
    assert str(info.value).splitlines()[-1] == (
        "these rules compile for the sitecore dialect, not asyncapi (from cdp.dialect); a "
        "mapping file can say dialect: sitecore"
    )


# -- keys in the wrong place ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("on_no_match: skip\nrules: [{name: v, skip: true}]",
         "unknown key 'on_no_match' (on_no_match goes under defaults:)"),
        ("rules: [{name: v, on_no_match: skip, skip: true}]",
         "unknown key 'on_no_match' (on_no_match goes under defaults:)"),
        ("rules: [{name: v, fields: {}, emit: {type: VIEW}}]",
         "unknown key 'fields' (fields is an event's: put it under emit:)"),
        ("rules: [{name: v, pos: x, skip: true}]",
         "unknown key 'pos' (payload fields go under emit: fields:)"),
        ("rules: [{name: v, emit: {type: VIEW, pos: x}}]",
         "unknown key 'pos' (payload fields go under fields:)"),
        ("rules: [{name: v, emit: {type: VIEW, topics: [a]}}]",
         "unknown key 'topics' (topics is the rule's: put it beside name:, not under emit:)"),
        ("pos: x\nrules: [{name: v, skip: true}]",
         "unknown key 'pos' (payload fields go under defaults: fields:, or under a rule's emit: "
         "fields:)"),
    ],
)  # fmt: skip
def test_a_key_in_the_wrong_place_says_where_it_belongs(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_text(text, SITECORE)
    assert said in str(info.value)


# -- paths against the input records (no schema) -------------------------------------------


def test_input_records_have_the_keys_seen_in_any_of_them_and_no_types() -> None:
    shape = shape_of_values([{"a": 1, "b": {"c": [{"d": 1}]}}, {"a": None, "e": [1], "b": None}])
    assert set(shape.fields) == {"a", "b", "e"}
    assert shape.fields["a"].kind == "any"
    assert shape.fields["b"].fields["c"].item is not None


def test_paths_are_held_against_the_records_their_rule_matched() -> None:
    mapper = _sitecore(
        """\
        - {name: bots, when: "agnet == 'bot'", skip: true}
        - name: views
          emit: {type: VIEW, fields: {referrer: referer, ext: {width: viewport.widht}}}
        - {name: never, when: nothing, emit: {type: VIEW, fields: {referrer: no_such_field}}}
        """
    )
    records = [
        {"partyId": "b", "location": "l", "site": "s", "agent": "x", "referer": "r",
         "viewport": {"width": 3}},
    ]  # fmt: skip
    warnings = check_input(mapper, records, "t", ["views"])
    assert warnings == [
        "m.yaml:10: rule 'bots', field 'when': path \"agnet == 'bot'\": the input has no field "
        "'agnet' (did you mean 'agent'?)",
        "m.yaml:12: rule 'views', VIEW, field 'ext.width': path 'viewport.widht': 'viewport' "
        "has no field 'widht' (did you mean 'viewport.width'?)",
        "m.yaml:13: rule 'never', field 'when': path 'nothing': the input has no field 'nothing'",
    ]  # the fields of 'never' are not held against records it never matched


def test_unknown_pos_log_counts_every_record_and_logs_each_value_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from connector.settle.stage import UnknownPosLog

    counted: list[int] = []
    log = UnknownPosLog(lambda: counted.append(1), "cdp.points_of_sale")
    with caplog.at_level(logging.WARNING, "connector.settle.stage"):
        for value in ("a", "a", "b", "a"):
            log(value)
    assert len(counted) == 4
    assert caplog.text.count("pos 'a' is not in cdp.points_of_sale") == 1
    assert caplog.text.count("pos 'b' is not in cdp.points_of_sale") == 1
