"""The compiler's behaviours no other unit test pinned (issue 18, its mutation survivors).

A dialect whose events have no ``browser_id`` (every shipped one has it) needs a
guest key; default fields merge into the events whose model has them, an
explicit null overriding one; ``browser_id_for`` anywhere asks the sender to
resolve browser ids; the guest key's and a computed custom name's paths are
reported under their own field names, with the mapping file's name; the hints
of the unknown-key and unknown-type messages; ``custom:`` given a number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from connector.decode.schemas import load_schema
from connector.errors import ConfigError, MappingError
from connector.mapping import compile_mapping, compile_text
from connector.mapping.avro_shape import shape_of
from connector.mapping.pathcheck import check_mapper
from tests.unit import mapping_dialect
from tests.unit.mapping_dialect import flat_dialect

ROOT = Path(__file__).resolve().parents[3]
SHOES = ROOT / "docs" / "examples" / "shoe-clickstream.avsc"

# --- a dialect whose VIEW and custom events carry no browser_id --------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class KView(_Strict):
    channel: Literal["WEB", "MOBILE_APP"]
    type: Literal["VIEW"]
    page: StrictStr | None = None
    guest_id: StrictStr | None = None  # a payload field spelled like defaults.guest_key


class KTagged(_Strict):
    channel: Literal["WEB", "MOBILE_APP"]
    type: Literal["TAGGED"]
    browser_id: StrictStr


class KCustom(_Strict):
    channel: Literal["WEB", "MOBILE_APP"]
    type: Annotated[str, Field(min_length=1)]
    page: StrictStr | None = None


def keyless_dialect() -> mapping_dialect.TestDialect:
    return mapping_dialect.TestDialect(
        "test-keyless", {"VIEW": KView, "TAGGED": KTagged, "CUSTOM": KCustom}
    )


def keyless_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        compile_text(text, keyless_dialect(), filename="k.yaml")
    return str(info.value)


def flat_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        compile_text(text, flat_dialect(), filename="m.yaml")
    return str(info.value)


def one(line: str) -> str:
    return f"1 problem in mapping rules:\n  {line}"


# --- an event without browser_id needs a guest key ----------------------------


@pytest.mark.parametrize(
    ("event", "label"),
    [
        ("{type: VIEW}", "VIEW"),
        ("{custom: signup}", "signup"),
        ("{custom: {path: name}}", "custom event"),
    ],
)
def test_an_event_without_browser_id_and_no_guest_key_is_refused_at_its_line(
    event: str, label: str
) -> None:
    text = (
        "defaults:\n  fields:\n    channel: {const: WEB}\n"
        f"rules:\n- name: views\n  emit:\n  - {event}\n"
    )
    assert keyless_error(text) == one(
        f"k.yaml:7: rule 'views': {label} has no browser_id; set defaults.guest_key"
    )


def test_a_model_with_browser_id_needs_no_guest_key() -> None:
    mapper = compile_text(
        "rules:\n- name: tagged\n"
        "  emit: {type: TAGGED, fields: {channel: {const: WEB}, browser_id: visitor}}\n",
        keyless_dialect(),
    )
    [event] = mapper.map({"visitor": "v-1"}, "clicks").events
    assert event.guest_key == "v-1"


KEYLESS_RULES = """\
- name: views
  emit: {type: VIEW, fields: {page: url}}
- name: signups
  emit: {custom: signup, fields: {page: url}}
"""


def test_defaults_guest_key_lets_every_rule_emit_events_without_browser_id() -> None:
    text = "defaults:\n  guest_key: user\n  fields:\n    channel: {const: WEB}\nrules:\n"
    mapper = compile_text(text + KEYLESS_RULES, keyless_dialect())
    record = {"user": "u-7", "url": "/home"}
    [view] = mapper.map(record, "clicks").events
    assert (view.rule, view.event_type, view.guest_key) == ("views", "VIEW", "u-7")
    assert json.loads(view.body) == {"channel": "WEB", "type": "VIEW", "page": "/home"}


def test_a_rules_guest_key_covers_that_rule_only() -> None:
    text = "defaults:\n  fields:\n    channel: {const: WEB}\nrules:\n" + KEYLESS_RULES.replace(
        "- name: views\n", "- name: views\n  guest_key: user\n"
    )
    # signups has no guest key of its own: refused; views compiles (no problem for it)
    assert keyless_error(text) == one(
        "k.yaml:9: rule 'signups': signup has no browser_id; set defaults.guest_key"
    )
    mapper = compile_text(text.split("- name: signups")[0], keyless_dialect())
    [view] = mapper.map({"user": "u-8", "url": "/"}, "clicks").events
    assert view.guest_key == "u-8"


# --- default fields merged into each event ------------------------------------

FLAT_DEFAULTS = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {const: EUR}
    email: mail
    page: url
rules:
"""
RECORD = {"anonymous_id": "a-1", "session_id": "s-1", "site": "shop", "mail": "x@y.com"}


def test_a_default_field_goes_only_into_events_whose_model_has_it() -> None:
    mapper = compile_text(
        FLAT_DEFAULTS + "- name: both\n  emit:\n  - {type: VIEW}\n  - {type: IDENTITY}\n",
        flat_dialect(),
    )
    view, identity = mapper.map(RECORD, "clicks").events
    assert "email" not in json.loads(view.body)  # VIEW has no email: not merged, no error
    assert json.loads(identity.body)["email"] == "x@y.com"


def test_an_explicit_null_leaves_a_default_field_out() -> None:
    mapper = compile_text(
        FLAT_DEFAULTS + "- name: views\n  emit: {type: VIEW, fields: {page: null}}\n"
        "- name: others\n  emit: {type: VIEW}\n",
        flat_dialect(),
    )
    record = {**RECORD, "url": "/home"}
    [nulled] = mapper.map(record, "clicks").events
    assert "page" not in json.loads(nulled.body)
    other = mapper.rules[1].events[0].build(record, record)
    assert other["page"] == "/home"  # the default itself still applies elsewhere


def test_an_own_field_replaces_the_default_of_the_same_name() -> None:
    mapper = compile_text(
        FLAT_DEFAULTS + "- name: views\n  emit: {type: VIEW, fields: {page: {const: /own}}}\n",
        flat_dialect(),
    )
    [view] = mapper.map({**RECORD, "url": "/default"}, "clicks").events
    assert json.loads(view.body)["page"] == "/own"


# --- browser_id_for anywhere asks the sender to resolve browser ids -----------


def test_uses_browser_ids_when_an_event_field_in_a_rule_asks_for_one() -> None:
    text = (
        "defaults:\n  fields:\n    channel: {const: WEB}\n    session_id: session_id\n"
        "    pos: site\n    currency: {const: EUR}\n"
        "rules:\n- name: views\n  emit:\n  - type: VIEW\n"
        "    fields: {browser_id: {browser_id_for: visitor}}\n"
    )
    assert compile_text(text, flat_dialect()).uses_browser_ids is True


def test_no_browser_id_for_means_no_browser_ids_to_resolve() -> None:
    text = FLAT_DEFAULTS + (
        "- name: views\n  when: {kind: browser_id_for}\n"
        "  emit: [{type: VIEW, fields: {page: {const: browser_id_for}}}]\n"
    )
    assert compile_text(text, flat_dialect()).uses_browser_ids is False


# --- guest_key and custom paths, named as written, with the file --------------


def test_guest_key_and_custom_name_paths_are_noted_under_their_field() -> None:
    text = FLAT_DEFAULTS.replace("defaults:\n", "defaults:\n  guest_key: user\n") + (
        "- name: named\n  guest_key: account\n  emit: {custom: {path: kind}}\n"
    )
    mapper = compile_text(text, flat_dialect())
    noted = {(use.line, use.rule, use.field, use.text) for use in mapper.path_uses}
    assert {(2, None, "guest_key", "user"), (13, "named", "guest_key", "account")} <= noted
    assert (14, "named", "custom", "kind") in noted


def test_a_guest_key_path_the_schema_lacks_is_reported_with_the_file_and_field() -> None:
    text = FLAT_DEFAULTS.replace("defaults:\n", "defaults:\n  guest_key: usr_id\n") + (
        "- name: views\n  emit: {type: VIEW}\n"
    )
    mapper = compile_text(text, flat_dialect(), filename="shoes.yaml")
    errors, _ = check_mapper(mapper, shape_of(load_schema(SHOES)))
    [guest] = [error for error in errors if "'usr_id'" in error]
    assert guest.startswith("shoes.yaml:2: field 'guest_key': ")
    assert "(did you mean 'user_id'?)" in guest


def test_a_mapping_file_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(FLAT_DEFAULTS + "- name: views\n  emit: {type: VIEW}\n")
    assert compile_mapping(path, flat_dialect()).source == str(path)
    assert compile_text("rules: [{name: a, skip: true}]", flat_dialect()).source == "<mapping>"


# --- hints --------------------------------------------------------------------


def test_a_defaults_key_close_to_a_defaults_key_gets_the_suggestion_not_the_payload_hint() -> None:
    # guest_id is also a VIEW field; the near miss of guest_key is the likelier mistake
    text = "defaults:\n  guest_id: user\nrules:\n- {name: a, skip: true}\n"
    assert keyless_error(text) == one(
        "k.yaml:2: defaults: unknown key 'guest_id' (did you mean 'guest_key'?)"
    )


def test_an_unknown_event_type_lists_the_dialects_types_comma_separated() -> None:
    assert flat_error(FLAT_DEFAULTS + "- {name: a, emit: {type: VEIW}}\n") == one(
        "m.yaml:11: rule 'a': unknown event type 'VEIW' (did you mean 'VIEW'?); the test-flat "
        "dialect has ADD, IDENTITY, ORDER_CHECKOUT, SEARCH, VIEW (for a custom event write "
        "custom: VEIW)"
    )


def test_a_reserved_name_as_custom_is_refused_at_the_custom_line() -> None:
    text = FLAT_DEFAULTS + "- name: a\n  emit:\n    fields: {}\n    custom: VIEW\n"
    assert flat_error(text) == one(
        "m.yaml:14: rule 'a': 'VIEW' is a reserved event type: write type: VIEW"
    )


def test_an_events_bad_when_names_the_rule_and_the_event() -> None:
    text = FLAT_DEFAULTS + "- name: a\n  emit:\n  - {type: VIEW, when: 'a =='}\n"
    assert flat_error(text).startswith(
        one("m.yaml:13: rule 'a', VIEW: when: invalid expression 'a ==': ")
    )


# --- custom: given a number ---------------------------------------------------


@pytest.mark.parametrize(("written", "value"), [("5", 5), ("true", True)])
def test_custom_given_a_number_or_boolean_is_refused_at_compile_time(
    written: str, value: object
) -> None:
    """Every record would fail with it, so it is a start-up error naming its line."""
    text = FLAT_DEFAULTS + f"- name: a\n  emit:\n    custom: {written}\n"
    line = FLAT_DEFAULTS.count("\n") + 3
    assert flat_error(text) == one(
        f"m.yaml:{line}: rule 'a', field 'custom': an event name or a spec that computes "
        f"one ({{path: ...}}), not {value!r}"
    )


def test_a_string_custom_event_is_labelled_by_its_name_at_run_time() -> None:
    mapper = compile_text(FLAT_DEFAULTS + "- {name: a, emit: {custom: signup}}\n", flat_dialect())
    with pytest.raises(MappingError) as info:
        mapper.map({**RECORD, "session_id": None}, "clicks")
    assert str(info.value).startswith("rule 'a', signup: field 'session_id': ")


# --- which lines are the defaults' ----------------------------------------------

FIELDS = "defaults:\n  fields:\n    channel: {const: WEB}\n    browser_id: anonymous_id\n"
REST = "    session_id: session_id\n    pos: site\n    currency: {const: EUR}\n"


def test_a_problem_on_any_line_of_a_multi_line_default_is_the_defaults() -> None:
    text = FIELDS + REST + "    page:\n      path: url\n      transform: uper\n"
    assert flat_error(text + "rules:\n- {name: a, emit: {type: VIEW}}\n").startswith(
        one("m.yaml:10: field 'page': unknown transform 'uper' (did you mean 'upper'?)")
    )


def test_a_problem_of_the_last_default_field_is_the_defaults() -> None:
    text = FIELDS + REST + "    page: {nope: 1}\nrules:\n- {name: a, emit: {type: VIEW}}\n"
    assert flat_error(text).startswith(one("m.yaml:8: field 'page': unknown key(s) ['nope']"))


def test_a_rules_problem_right_below_the_defaults_is_the_rules() -> None:
    text = FIELDS + REST + "rules: [{name: a, emit: {type: VIEW, fields: {page: {nope: 1}}}}]\n"
    assert flat_error(text).startswith(
        one("m.yaml:8: rule 'a', VIEW, field 'page': unknown key(s) ['nope']")
    )


def test_a_rule_written_above_the_defaults_keeps_its_problems() -> None:
    text = "rules:\n- {name: a, emit: {type: VIEW, fields: {page: {nope: 1}}}}\n" + FIELDS + REST
    assert flat_error(text).startswith(
        one("m.yaml:2: rule 'a', VIEW, field 'page': unknown key(s) ['nope']")
    )


def test_a_rules_line_is_where_its_topics_or_topic_pattern_is_written() -> None:
    text = (
        FIELDS
        + REST
        + (
            "rules:\n- name: a\n  topic_pattern: 'clicks-.*'\n  skip: true\n"
            "- name: b\n  skip: true\n  topics: [x]\n  topic_pattern: 'x'\n"
            "- name: c\n  skip: true\n"
        )
    )
    assert [rule.line for rule in compile_text(text, flat_dialect()).rules] == [10, 14, 16]


def test_a_skip_rule_skips_without_reading_the_default_guest_key() -> None:
    text = FIELDS.replace("defaults:\n", "defaults:\n  guest_key: user\n") + REST
    mapper = compile_text(text + "rules:\n- {name: bots, skip: true}\n", flat_dialect())
    result = mapper.map({"agent": "bot"}, "clicks")  # no user: an emitting rule would fail
    assert (result.events, result.skipped_by) == ((), "bots")
