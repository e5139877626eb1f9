"""Every start-up error of the mapping compiler, word for word: file, line, rule, event,
field and what was expected (the messages an operator reads; DESIGN: "a clear message
with the file, the field path and what was expected")."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.mapping import compile_text
from tests.unit.mapping_dialect import flat_dialect

D = """\
defaults:
  fields:
    channel: {const: WEB}
    browser_id: anonymous_id
    session_id: session_id
    pos: site
    currency: {path: currency, default: EUR}
"""  # rules start at line 9 after "rules:" on line 8
R = D + "rules:\n"
COMPUTED = (
    "a field is computed with one of path, const, coalesce, template, object, list, each, "
    "browser_id_for (plus transform, default)"
)

CASES = {
    "unknown top key": (
        D + "rulez: []\nrules:\n- {name: a, emit: {type: VIEW}}\n",
        "m.yaml:8: unknown key 'rulez' (did you mean 'rules'?)",
    ),
    "version 2": (
        "version: 2\n" + R + "- {name: a, emit: {type: VIEW}}\n",
        "m.yaml:1: only version: 1 is supported",
    ),
    "no rules": (D, "m.yaml:1: 'rules' must be a non-empty list"),
    "empty rules": (D + "rules: []\n", "m.yaml:8: 'rules' must be a non-empty list"),
    "defaults not a mapping": (
        "defaults: [1]\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:1: defaults must be a mapping",
    ),
    "defaults unknown key": (
        "defaults:\n  on_no_matsh: skip\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:2: defaults: unknown key 'on_no_matsh' (did you mean 'on_no_match'?)",
    ),
    "payload field in defaults": (
        "defaults:\n  pos: site\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:2: defaults: unknown key 'pos' (payload fields go under defaults.fields)",
    ),
    "bad on_no_match": (
        "defaults:\n  on_no_match: drop\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:2: defaults.on_no_match must be skip or dead_letter",
    ),
    "bad default guest_key": (
        "defaults:\n  guest_key: {nope: 1}\nrules:\n- {name: a, skip: true}\n",
        f"m.yaml:2: field 'guest_key': unknown key(s) ['nope']: {COMPUTED}",
    ),
    "default fields not a mapping": (
        "defaults:\n  fields: [a]\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:2: defaults.fields must be a mapping of field: expression",
    ),
    "type in default fields": (
        "defaults:\n  fields:\n    type: {const: VIEW}\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:3: the event type is set by each rule's type/custom",
    ),
    "unknown default field": (
        "defaults:\n  fields:\n    sesion_id: session_id\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:3: field 'sesion_id': no test-flat event has a field 'sesion_id' "
        "(did you mean 'session_id'?)",
    ),
    "object as default guest_key": (
        "defaults:\n  guest_key: {object: {a: x}}\nrules:\n- {name: a, skip: true}\n",
        "m.yaml:2: field 'guest_key': an object is given but the field is a value",
    ),
    "list as rule guest_key": (
        R + "- {name: a, guest_key: {list: [x]}, emit: {type: VIEW}}\n",
        "m.yaml:9: rule 'a', field 'guest_key': a list is built but the field is a value",
    ),
    "object as custom type": (
        R + "- {name: a, emit: {custom: {object: {a: x}}}}\n",
        "m.yaml:9: rule 'a', field 'custom': an object is given but the field is a value",
    ),
    "rule not a mapping": (
        R + "- just text\n",
        "m.yaml:9: each rule is a mapping with name, when, emit (or skip)",
    ),
    "rule without name": (
        R + "- {emit: {type: VIEW}}\n",
        "m.yaml:9: a rule needs a name (it shows in logs and dead-letter headers)",
    ),
    "empty rule name": (
        R + "- {name: '', emit: {type: VIEW}}\n",
        "m.yaml:9: a rule needs a name (it shows in logs and dead-letter headers)",
    ),
    "duplicate rule name": (
        R + "- {name: a, skip: true}\n- {name: a, skip: true}\n",
        "m.yaml:10: duplicate rule name 'a' (first at line 9)",
    ),
    "unknown rule key": (
        R + "- {name: a, skip: true, emitt: 1}\n",
        "m.yaml:9: rule 'a': unknown key 'emitt' (did you mean 'emit'?)",
    ),
    "bad rule guest_key": (
        R + "- {name: a, guest_key: {nope: 1}, emit: {type: VIEW}}\n",
        f"m.yaml:9: rule 'a', field 'guest_key': unknown key(s) ['nope']: {COMPUTED}",
    ),
    "skip false": (
        R + "- {name: a, skip: false}\n",
        "m.yaml:9: rule 'a': skip must be true (leave it out to emit events)",
    ),
    "skip and emit": (
        R + "- {name: a, skip: true, emit: {type: VIEW}}\n",
        "m.yaml:9: rule 'a': a rule either skips or emits, not both",
    ),
    "neither skip nor emit": (
        R + "- {name: a}\n",
        "m.yaml:9: rule 'a': the rule needs emit: (events to send) or skip: true",
    ),
    "empty emit": (
        R + "- {name: a, emit: []}\n",
        "m.yaml:9: rule 'a': emit is empty (write skip: true to drop records)",
    ),
    "topic not a name": (
        R + "- {name: a, topics: [1], skip: true}\n",
        "m.yaml:9: rule 'a', field 'topics': topics is a topic name or a list of topic names",
    ),
    "empty topic name": (
        R + "- {name: a, topics: [clicks, ''], skip: true}\n",
        "m.yaml:9: rule 'a', field 'topics': topics is a topic name or a list of topic names",
    ),
    "no topics": (
        R + "- {name: a, topics: [], skip: true}\n",
        "m.yaml:9: rule 'a', field 'topics': topics is a topic name or a list of topic names",
    ),
    "topic_pattern not a string": (
        R + "- {name: a, topic_pattern: [x], skip: true}\n",
        "m.yaml:9: rule 'a', field 'topic_pattern': topic_pattern is a regular expression string",
    ),
    "when neither expression nor mapping": (
        R + "- {name: a, when: 5, skip: true}\n",
        "m.yaml:9: rule 'a': when is a JMESPath expression (\"event_type == 'SEARCH'\") "
        "or a mapping of path: value (event_type: SEARCH)",
    ),
    "event not a mapping": (
        R + "- {name: a, emit: [VIEW]}\n",
        "m.yaml:9: rule 'a': an event is a mapping with type (or custom) and fields",
    ),
    "unknown event key": (
        R + "- {name: a, emit: {type: VIEW, feilds: {}}}\n",
        "m.yaml:9: rule 'a': unknown key 'feilds' (did you mean 'fields'?)",
    ),
    "event without type": (
        R + "- {name: a, emit: {fields: {}}}\n",
        "m.yaml:9: rule 'a': an event needs type: (one of ADD, IDENTITY, ORDER_CHECKOUT, "
        "SEARCH, VIEW) or custom: NAME",
    ),
    "bad custom expression": (
        R + "- {name: a, emit: {custom: {nope: 1}}}\n",
        f"m.yaml:9: rule 'a', field 'custom': unknown key(s) ['nope']: {COMPUTED}",
    ),
    "fields not a mapping": (
        R + "- {name: a, emit: {type: VIEW, fields: [1]}}\n",
        "m.yaml:9: rule 'a': fields must be a mapping of field: expression",
    ),
    "type in event fields": (
        R + "- {name: a, emit: {type: VIEW, fields: {type: {const: X}}}}\n",
        "m.yaml:9: rule 'a', field 'type': the event type is set by type: or custom:",
    ),
    "required field missing, reserved type": (
        "rules:\n- {name: a, emit: {type: VIEW}}\n",
        "m.yaml:2: rule 'a', VIEW, field 'browser_id': required field(s) browser_id, "
        "channel, currency, pos, session_id have no expression",
    ),
    "required field missing, custom type": (
        "rules:\n- {name: a, emit: {custom: X}}\n",
        "m.yaml:2: rule 'a', custom X, field 'browser_id': required field(s) browser_id, "
        "channel, currency, pos, session_id have no expression",
    ),
    "required field missing, computed custom type": (
        "rules:\n- {name: a, emit: {custom: {path: event_type}}}\n",
        "m.yaml:2: rule 'a', custom event, field 'browser_id': required field(s) browser_id, "
        "channel, currency, pos, session_id have no expression",
    ),
}


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        compile_text(text, flat_dialect(), filename="m.yaml")
    return str(info.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mapping_error_reads_exactly(case: str) -> None:
    text, line = CASES[case]
    assert error_of(text) == f"1 problem in mapping rules:\n  {line}"


def test_a_document_that_is_not_a_mapping_is_refused_at_once() -> None:
    assert error_of("- just a list\n") == "m.yaml:1: expected a mapping with defaults and rules"


@pytest.mark.parametrize(
    ("rule", "start"),
    [
        ("{name: a, topic_pattern: '(', skip: true}",
         "m.yaml:9: rule 'a', field 'topic_pattern': topic_pattern is not a valid regular "
         "expression: missing )"),
        ("{name: a, when: 'a ==', skip: true}",
         "m.yaml:9: rule 'a': when: invalid expression 'a ==': "),
        ("{name: a, when: {'a..b': 1}, skip: true}",
         "m.yaml:9: rule 'a': when: invalid path 'a..b': "),
    ],
)  # fmt: skip
def test_errors_from_a_parsing_library_name_the_rule_and_what_failed(rule: str, start: str) -> None:
    assert error_of(R + f"- {rule}\n").startswith(f"1 problem in mapping rules:\n  {start}")


def test_all_problems_are_reported_at_once_up_to_twenty() -> None:
    rules = "".join(f"- {{name: r{i}, skip: false}}\n" for i in range(25))
    message = error_of("defaults:\n  fields:\n    sesion_id: x\n    chanel: y\nrules:\n" + rules)
    lines = message.splitlines()
    assert lines[0] == "27 problems in mapping rules:"
    assert lines[1].startswith("  m.yaml:3: field 'sesion_id'")
    assert lines[3] == "  m.yaml:6: rule 'r0': skip must be true (leave it out to emit events)"
    assert lines[20] == "  m.yaml:23: rule 'r17': skip must be true (leave it out to emit events)"
    assert lines[21:] == ["  ... and 7 more"]


def test_a_bad_default_is_reported_once_not_once_per_rule() -> None:
    text = D.replace("pos: site", "pos: {nope: 1}") + (
        "rules:\n- {name: a, emit: {type: VIEW}}\n"
        "- {name: b, emit: {type: SEARCH, fields: {search_term: q}}}\n"
    )
    assert error_of(text) == (  # as the defaults', not as the first rule's
        f"1 problem in mapping rules:\n  m.yaml:6: field 'pos': unknown key(s) ['nope']: {COMPUTED}"
    )


def test_two_problems_are_counted_in_the_plural() -> None:
    message = error_of(
        "defaults:\n  fields:\n    sesion_id: x\n    chanel: y\nrules:\n- {name: a, skip: true}\n"
    )
    assert message.splitlines()[0] == "2 problems in mapping rules:"


def test_a_yaml_syntax_error_names_the_file_and_line() -> None:
    assert error_of("rules: [\n").startswith("m.yaml:2: invalid YAML: ")
