"""Compile a mapping file into a :class:`Mapper`, checking it against the dialect.

Every rule is checked at start-up against the target event models: unknown
event types, fields the event does not have, required fields without an
expression, invalid expressions and unknown or misused transforms are all
reported together, each with the file, line, rule and field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, cast

from connector.errors import ConfigError, InternalError
from connector.mapping import paths
from connector.mapping.fields import (
    Evaluator,
    SpecError,
    compile_object,
    compile_value,
    entries_of,
    suggest,
)
from connector.mapping.mapper import CompiledEvent, CompiledRule, Mapper
from connector.mapping.protocol import DialectLike
from connector.mapping.source import YNode, load_yaml, parse_yaml
from connector.mapping.targets import Target, model_fields

__all__ = ["compile_mapping", "compile_text"]

CUSTOM = "CUSTOM"
_TOP_KEYS = ("version", "defaults", "rules")
_DEFAULT_KEYS = ("on_no_match", "guest_key", "fields")
_RULE_KEYS = ("name", "description", "topics", "topic_pattern", "when", "emit", "skip", "guest_key")
_EVENT_KEYS = ("type", "custom", "when", "fields")
_MAX_REPORTED = 20


class _Fail(InternalError):
    """A problem that stops compiling the current rule (or the file)."""

    def __init__(self, line: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.field = field


class _Errors:
    """Collects compile errors so one run reports all of them, not just the first."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.messages: list[str] = []
        self._seen: set[tuple[int, str | None, str]] = set()

    def add(
        self,
        line: int,
        message: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        event: str | None = None,
    ) -> None:
        key = (line, field, message)
        if key in self._seen:  # a bad default is reported once, not once per rule
            return
        self._seen.add(key)
        where = [f"rule {rule!r}"] if rule else []
        if event:
            where.append(event)
        if field:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        self.messages.append(
            f"{self.filename}:{line}: {prefix}: {message}"
            if prefix
            else f"{self.filename}:{line}: {message}"
        )

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:_MAX_REPORTED]
        more = len(self.messages) - len(shown)
        text = "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
        count = len(self.messages)
        raise ConfigError(f"{count} problem{'s' if count > 1 else ''} in mapping rules:\n  {text}")


def compile_mapping(path: Path, dialect: DialectLike) -> Mapper:
    """Load and compile a mapping file for ``dialect``; any problem is a ConfigError."""
    return _compile(load_yaml(path), str(path), dialect)


def compile_text(text: str, dialect: DialectLike, *, filename: str = "<mapping>") -> Mapper:
    """Compile mapping rules given as YAML text (tests, embedded configs)."""
    return _compile(parse_yaml(text, filename), filename, dialect)


def _compile(root: YNode, filename: str, dialect: DialectLike) -> Mapper:
    errors = _Errors(filename)
    if not root.is_map:
        raise ConfigError(f"{filename}:{root.line}: expected a mapping with defaults and rules")
    for key in root.value:
        if key not in _TOP_KEYS:
            errors.add(root.key_lines[key], f"unknown key {key!r}{suggest(key, _TOP_KEYS)}")
    version = root.get("version")
    if version is not None and version.value != 1:
        errors.add(version.line, "only version: 1 is supported")

    defaults = root.get("defaults") or YNode({}, root.line, "map")
    on_no_match, guest_key, default_fields = _defaults(defaults, dialect, errors)

    rules_node = root.get("rules")
    rules: list[CompiledRule] = []
    if rules_node is None or not rules_node.is_seq or not rules_node.value:
        line = rules_node.line if rules_node else root.line
        errors.add(line, "'rules' must be a non-empty list")
    else:
        names: dict[str, int] = {}
        for node in rules_node.value:
            rule = _rule(node, dialect, default_fields, guest_key is not None, names, errors)
            if rule is not None:
                rules.append(rule)
    errors.raise_if_any()
    reserved = frozenset(k for k in dialect.models if k != CUSTOM)
    return Mapper(
        source=filename,
        dialect=dialect,
        rules=tuple(rules),
        on_no_match=on_no_match,
        guest_key=guest_key,
        reserved=reserved,
        uses_browser_ids=_mentions(root, "browser_id_for"),
    )


def _mentions(node: YNode, key: str) -> bool:
    """Whether ``key`` is a mapping key anywhere under ``node``."""
    if node.is_map:
        return key in node.value or any(_mentions(child, key) for _, child in node.items())
    if node.is_seq:
        return any(_mentions(child, key) for child in node.value)
    return False


def _defaults(
    node: YNode, dialect: DialectLike, errors: _Errors
) -> tuple[Literal["skip", "dead_letter"], Evaluator | None, list[tuple[str, YNode, int]]]:
    if not node.is_map:
        errors.add(node.line, "defaults must be a mapping")
        return "dead_letter", None, []
    for key in node.value:
        if key not in _DEFAULT_KEYS:
            hint = suggest(key, _DEFAULT_KEYS)
            if not hint and any(key in model_fields(m) for m in dialect.models.values()):
                hint = " (payload fields go under defaults.fields)"
            errors.add(node.key_lines[key], f"defaults: unknown key {key!r}{hint}")
    on_no_match: Literal["skip", "dead_letter"] = "dead_letter"
    choice = node.get("on_no_match")
    if choice is not None:
        if choice.value in ("skip", "dead_letter"):
            on_no_match = cast(Literal["skip", "dead_letter"], choice.value)
        else:
            errors.add(choice.line, "defaults.on_no_match must be skip or dead_letter")
    guest_key = None
    guest_node = node.get("guest_key")
    if guest_node is not None:
        try:
            guest_key = compile_value(guest_node, Target("scalar"), "guest_key").evaluate
        except SpecError as exc:
            errors.add(exc.line, exc.message, field="guest_key")
    fields_node = node.get("fields")
    entries: list[tuple[str, YNode, int]] = []
    if fields_node is not None:
        if not fields_node.is_map:
            errors.add(fields_node.line, "defaults.fields must be a mapping of field: expression")
        else:
            known = {k for m in dialect.models.values() for k in model_fields(m)}
            for key, child, line in entries_of(fields_node):
                if key == "type":
                    errors.add(line, "the event type is set by each rule's type/custom")
                elif key not in known:
                    errors.add(
                        line,
                        f"no {dialect.name} event has a field {key!r}{suggest(key, known)}",
                        field=key,
                    )
                else:
                    entries.append((key, child, line))
    return on_no_match, guest_key, entries


def _rule(
    node: YNode,
    dialect: DialectLike,
    default_fields: list[tuple[str, YNode, int]],
    has_guest_key: bool,
    names: dict[str, int],
    errors: _Errors,
) -> CompiledRule | None:
    if not node.is_map:
        errors.add(node.line, "each rule is a mapping with name, when, emit (or skip)")
        return None
    name_node = node.get("name")
    name = name_node.value if name_node is not None else None
    if not isinstance(name, str) or not name:
        errors.add(node.line, "a rule needs a name (it shows in logs and dead-letter headers)")
        return None
    if name in names:
        errors.add(node.line, f"duplicate rule name {name!r} (first at line {names[name]})")
        return None
    names[name] = node.line
    try:
        return _rule_body(node, name, dialect, default_fields, has_guest_key, errors)
    except _Fail as fail:
        errors.add(fail.line, fail.message, rule=name, field=fail.field)
        return None


def _rule_body(
    node: YNode,
    name: str,
    dialect: DialectLike,
    default_fields: list[tuple[str, YNode, int]],
    has_guest_key: bool,
    errors: _Errors,
) -> CompiledRule:
    for key in node.value:
        if key not in _RULE_KEYS:
            raise _Fail(node.key_lines[key], f"unknown key {key!r}{suggest(key, _RULE_KEYS)}")
    topics = _topics(node.get("topics"))
    pattern = _pattern(node.get("topic_pattern"))
    when_node = node.get("when")
    when = _condition(when_node) if when_node is not None else None
    when_text = _condition_text(when_node)
    guest_node = node.get("guest_key")
    guest_key = None
    if guest_node is not None:
        try:
            guest_key = compile_value(guest_node, Target("scalar"), "guest_key").evaluate
        except SpecError as exc:
            raise _Fail(exc.line, exc.message, "guest_key") from exc
    skip_node, emit_node = node.get("skip"), node.get("emit")
    if skip_node is not None:
        if skip_node.value is not True:
            raise _Fail(skip_node.line, "skip must be true (leave it out to emit events)")
        if emit_node is not None:
            raise _Fail(emit_node.line, "a rule either skips or emits, not both")
        return CompiledRule(name, topics, pattern, when, when_text, True, (), guest_key)
    if emit_node is None:
        raise _Fail(node.line, "the rule needs emit: (events to send) or skip: true")
    event_nodes = emit_node.value if emit_node.is_seq else [emit_node]
    if not event_nodes:
        raise _Fail(emit_node.line, "emit is empty (write skip: true to drop records)")
    events = []
    for event_node in event_nodes:
        event = _event(
            event_node, name, dialect, default_fields, has_guest_key or bool(guest_key), errors
        )
        if event is not None:
            events.append(event)
    return CompiledRule(name, topics, pattern, when, when_text, False, tuple(events), guest_key)


def _topics(node: YNode | None) -> frozenset[str] | None:
    if node is None:
        return None
    items = node.value if node.is_seq else [node]
    names = [item.value for item in items]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise _Fail(node.line, "topics is a topic name or a list of topic names")
    return frozenset(names)


def _pattern(node: YNode | None) -> re.Pattern[str] | None:
    if node is None:
        return None
    if not isinstance(node.value, str):
        raise _Fail(node.line, "topic_pattern is a regular expression string")
    try:
        return re.compile(node.value)
    except re.error as exc:
        raise _Fail(node.line, f"topic_pattern is not a valid regular expression: {exc}") from exc


def _condition(node: YNode) -> paths.Getter:
    """``when``: a JMESPath expression, or ``{path: value | [values]}`` (all must hold)."""
    if node.is_scalar and isinstance(node.value, str):
        try:
            return paths.compile_path(node.value)
        except paths.PathSyntaxError as exc:
            raise _Fail(node.line, f"when: invalid expression {node.value!r}: {exc}") from exc
    if node.is_map and node.value:
        checks = []
        for key, child in node.items():
            try:
                getter = paths.compile_path(key)
            except paths.PathSyntaxError as exc:
                raise _Fail(node.key_lines[key], f"when: invalid path {key!r}: {exc}") from exc
            wanted = child.to_python()
            checks.append((getter, tuple(wanted) if isinstance(wanted, list) else None, wanted))
        return _all_equal(tuple(checks))
    raise _Fail(
        node.line,
        "when is a JMESPath expression (\"event_type == 'SEARCH'\") "
        "or a mapping of path: value (event_type: SEARCH)",
    )


def _all_equal(
    checks: tuple[tuple[paths.Getter, tuple[Any, ...] | None, Any], ...],
) -> paths.Getter:
    def holds(record: Any) -> bool:
        for getter, options, wanted in checks:
            value = getter(record)
            if options is not None:
                if not any(paths.equals(value, option) for option in options):
                    return False
            elif type(wanted) is str:
                if value != wanted:  # a string only equals a string: plain == is exact
                    return False
            elif not paths.equals(value, wanted):
                return False
        return True

    return holds


def _condition_text(node: YNode | None) -> str:
    if node is None:
        return ""
    if node.is_scalar:
        return str(node.value)
    return ", ".join(f"{k}: {v.to_python()!r}" for k, v in node.items())


def _event(
    node: YNode,
    rule: str,
    dialect: DialectLike,
    default_fields: list[tuple[str, YNode, int]],
    has_guest_key: bool,
    errors: _Errors,
) -> CompiledEvent | None:
    try:
        return _event_body(node, dialect, default_fields, has_guest_key)
    except _Fail as fail:
        errors.add(fail.line, fail.message, rule=rule, field=fail.field)
    except SpecError as exc:
        errors.add(exc.line, exc.message, rule=rule, field=exc.field, event=_label_of(node))
    return None


def _label_of(node: YNode) -> str | None:
    type_node = node.get("type")
    if type_node is not None and isinstance(type_node.value, str):
        return str(type_node.value)
    custom = node.get("custom")
    if custom is not None:
        return f"custom {custom.value}" if isinstance(custom.value, str) else "custom event"
    return None


def _event_body(
    node: YNode,
    dialect: DialectLike,
    default_fields: list[tuple[str, YNode, int]],
    has_guest_key: bool,
) -> CompiledEvent:
    if not node.is_map:
        raise _Fail(node.line, "an event is a mapping with type (or custom) and fields")
    for key in node.value:
        if key not in _EVENT_KEYS:
            raise _Fail(node.key_lines[key], f"unknown key {key!r}{suggest(key, _EVENT_KEYS)}")
    reserved = sorted(k for k in dialect.models if k != CUSTOM)
    type_node, custom_node = node.get("type"), node.get("custom")
    event_type: str | None = None
    type_of: Evaluator | None = None
    if (type_node is None) == (custom_node is None):
        raise _Fail(
            node.line, "an event needs type: (one of " + ", ".join(reserved) + ") or custom: NAME"
        )
    if type_node is not None:
        event_type = type_node.value
        if event_type not in reserved:
            hint = suggest(str(event_type), reserved)
            raise _Fail(
                type_node.line,
                f"unknown event type {event_type!r}{hint}; the {dialect.name} dialect has "
                f"{', '.join(reserved)} (for a custom event write custom: {event_type})",
            )
        model = dialect.models[str(event_type)]
        label = str(event_type)
    else:
        assert custom_node is not None  # noqa: S101 - exactly one of the two is set
        model = dialect.models[CUSTOM]
        if custom_node.is_scalar and isinstance(custom_node.value, str):
            event_type = custom_node.value
            if event_type in reserved:
                raise _Fail(
                    custom_node.line,
                    f"{event_type!r} is a reserved event type: write type: {event_type}",
                )
            label = event_type
        else:
            try:
                type_of = compile_value(custom_node, Target("scalar"), "custom").evaluate
            except SpecError as exc:
                raise _Fail(exc.line, exc.message, "custom") from exc
            label = "custom event"
    fields = model_fields(model)
    if not has_guest_key and "browser_id" not in fields:
        raise _Fail(node.line, f"{label} has no browser_id; set defaults.guest_key")
    when_node = node.get("when")
    when = _condition(when_node) if when_node is not None else None

    fields_node = node.get("fields") or YNode({}, node.line, "map")
    if not fields_node.is_map:
        raise _Fail(fields_node.line, "fields must be a mapping of field: expression")
    own = entries_of(fields_node)
    if "type" in fields_node.value:
        raise _Fail(
            fields_node.key_lines["type"], "the event type is set by type: or custom:", "type"
        )
    own_keys = {key for key, _, _ in own}
    # Defaults the rule does not override, for the fields this event model has.
    merged = [e for e in default_fields if e[0] in fields and e[0] not in own_keys] + own
    built = compile_object(merged, fields_node, Target("model", model=model), "")
    return CompiledEvent(label, event_type, type_of, when, built.evaluate)
