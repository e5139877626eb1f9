"""Compile a mapping file into a :class:`Mapper`, checking it against the dialect.

Every rule is checked at start-up against the target event models: unknown
event types, fields the event does not have, required fields without an
expression, invalid expressions and unknown or misused transforms are all
reported together in one pass, each with the file, line, rule and field (a
problem in ``defaults.fields`` once, as the defaults'). Every path the rules
read is noted (``Mapper.path_uses``) so it can be checked against a writer
schema (``connector.mapping.pathcheck``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal, cast

from connector.errors import ConfigError, InternalError
from connector.mapping import lookups, uses
from connector.mapping.conditions import (
    compile_condition,
    compile_pattern,
    compile_topics,
    condition_text,
)
from connector.mapping.fields import (
    Evaluator,
    SpecError,
    SpecErrors,
    compile_object,
    compile_value,
    entries_of,
    suggest,
)
from connector.mapping.mapper import CompiledEvent, CompiledRule, Mapper
from connector.mapping.problems import Problems
from connector.mapping.protocol import DialectLike
from connector.mapping.targets import Target, model_fields
from connector.yaml_lines import YNode, load_yaml, parse_yaml

__all__ = ["compile_mapping", "compile_text"]

CUSTOM = "CUSTOM"
_TOP_KEYS = ("version", "defaults", "rules")
_DEFAULT_KEYS = ("on_no_match", "guest_key", "fields")
_RULE_KEYS = ("name", "description", "topics", "topic_pattern", "when", "emit", "skip", "guest_key")
_EVENT_KEYS = ("type", "custom", "when", "fields")


class _Fail(InternalError):
    """A problem that stops compiling the current rule or event."""

    def __init__(self, line: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.field = field


def compile_mapping(path: Path, dialect: DialectLike) -> Mapper:
    """Load and compile a mapping file for ``dialect``; any problem is a ConfigError.

    Lookup files it names are read relative to the file's folder, once each.
    """
    with lookups.relative_to(Path(path).parent):
        return _compile(load_yaml(path), str(path), dialect)


def compile_text(text: str, dialect: DialectLike, *, filename: str = "<mapping>") -> Mapper:
    """Compile mapping rules given as YAML text (tests, embedded configs)."""
    return _compile(parse_yaml(text, filename), filename, dialect)


def _compile(root: YNode, filename: str, dialect: DialectLike) -> Mapper:
    errors = Problems(filename)
    if not root.is_map:
        raise ConfigError(f"{filename}:{root.line}: expected a mapping with defaults and rules")
    for key in root.value:
        if key not in _TOP_KEYS:
            errors.add(root.key_lines[key], f"unknown key {key!r}{suggest(key, _TOP_KEYS)}")
    version = root.get("version")
    if version is not None and version.value != 1:
        errors.add(version.line, "only version: 1 is supported")

    with uses.recording() as recorder:
        defaults = root.get("defaults") or YNode({}, root.line, "map")
        on_no_match, guest_key, default_fields = _defaults(defaults, dialect, errors)
        context = _Context(dialect, default_fields, guest_key is not None, errors)

        rules_node = root.get("rules")
        rules: list[CompiledRule] = []
        if rules_node is None or not rules_node.is_seq or not rules_node.value:
            line = rules_node.line if rules_node else root.line
            errors.add(line, "'rules' must be a non-empty list")
        else:
            names: dict[str, int] = {}
            for node in rules_node.value:
                recorder.rule, recorder.event = None, None
                rule = _rule(node, context, names, recorder)
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
        path_uses=tuple(
            # a default field is everyone's: reported as the defaults', not the first rule's
            replace(use, rule=None, event=None) if use.line in context.default_lines else use
            for use in recorder.uses
        ),
    )


class _Context:
    """What every rule is compiled with: the dialect, the defaults, the problem list."""

    def __init__(
        self,
        dialect: DialectLike,
        default_fields: list[tuple[str, YNode, int]],
        has_guest_key: bool,
        errors: Problems,
    ) -> None:
        self.dialect = dialect
        self.default_fields = default_fields
        self.has_guest_key = has_guest_key
        self.errors = errors
        # Lines of defaults.fields: a problem there is the defaults', not the rule's.
        self.default_lines = {n for _, child, line in default_fields for n in _lines(child, line)}

    def report(
        self, exc: SpecError | SpecErrors | _Fail, rule: str, event: str | None = None
    ) -> None:
        if isinstance(exc, _Fail):
            self.errors.add(exc.line, exc.message, rule=rule, field=exc.field or None)
            return
        for error in exc.errors if isinstance(exc, SpecErrors) else [exc]:
            if error.line in self.default_lines:
                self.errors.add(error.line, error.message, rule=None, field=error.field or None)
                continue
            self.errors.add(
                error.line, error.message, rule=rule, field=error.field or None, event=event
            )


def _lines(node: YNode, first: int) -> set[int]:
    """Every line a node spans (from its key's line to its last descendant's)."""
    last = node.line
    stack = [node]
    while stack:
        current = stack.pop()
        last = max(last, current.line)
        stack.extend(child for _, child in current.items())
        if current.is_seq:
            stack.extend(current.value)
    return set(range(first, last + 1))


def _mentions(node: YNode, key: str) -> bool:
    """Whether ``key`` is a mapping key anywhere under ``node``."""
    if node.is_map:
        return key in node.value or any(_mentions(child, key) for _, child in node.items())
    if node.is_seq:
        return any(_mentions(child, key) for child in node.value)
    return False


def _defaults(
    node: YNode, dialect: DialectLike, errors: Problems
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
    node: YNode, context: _Context, names: dict[str, int], recorder: uses.Recorder
) -> CompiledRule | None:
    errors = context.errors
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
    recorder.rule = name
    try:
        return _rule_body(node, name, context, recorder)
    except _Fail as fail:
        context.report(fail, name)
        return None


def _rule_body(
    node: YNode, name: str, context: _Context, recorder: uses.Recorder
) -> CompiledRule | None:
    """The rule, or None when it had problems (all reported, each on its own line)."""
    before = len(context.errors.messages)
    for key in node.value:
        if key not in _RULE_KEYS:
            context.report(
                _Fail(node.key_lines[key], f"unknown key {key!r}{suggest(key, _RULE_KEYS)}"), name
            )
    topics = pattern = when = guest_key = None
    try:
        topics = compile_topics(node.get("topics"))
    except SpecError as exc:
        context.report(exc, name)
    try:
        pattern = compile_pattern(node.get("topic_pattern"))
    except SpecError as exc:
        context.report(exc, name)
    when_node = node.get("when")
    if when_node is not None:
        try:
            when = compile_condition(when_node)
        except SpecError as exc:
            context.report(exc, name)
    when_text = condition_text(when_node)
    guest_node = node.get("guest_key")
    if guest_node is not None:
        try:
            guest_key = compile_value(guest_node, Target("scalar"), "guest_key").evaluate
        except (SpecError, SpecErrors) as exc:
            context.report(exc, name)
    skip_node, emit_node = node.get("skip"), node.get("emit")
    if skip_node is not None:
        if skip_node.value is not True:
            raise _Fail(skip_node.line, "skip must be true (leave it out to emit events)")
        if emit_node is not None:
            raise _Fail(emit_node.line, "a rule either skips or emits, not both")
        if len(context.errors.messages) > before:
            return None
        return CompiledRule(
            name, topics, pattern, when, when_text, True, (), guest_key, _topic_line(node)
        )
    if emit_node is None:
        raise _Fail(node.line, "the rule needs emit: (events to send) or skip: true")
    event_nodes = emit_node.value if emit_node.is_seq else [emit_node]
    if not event_nodes:
        raise _Fail(emit_node.line, "emit is empty (write skip: true to drop records)")
    events = []
    has_guest_key = context.has_guest_key or guest_key is not None
    for event_node in event_nodes:
        recorder.event = _label_of(event_node)
        event = _event(event_node, name, context, has_guest_key)
        if event is not None:
            events.append(event)
    if len(context.errors.messages) > before:
        return None
    return CompiledRule(
        name, topics, pattern, when, when_text, False, tuple(events), guest_key, _topic_line(node)
    )


def _topic_line(node: YNode) -> int:
    lines = [node.key_lines[k] for k in ("topics", "topic_pattern") if k in node.key_lines]
    return min(lines) if lines else node.line


def _event(node: YNode, rule: str, context: _Context, has_guest_key: bool) -> CompiledEvent | None:
    try:
        return _event_body(node, rule, context, has_guest_key)
    except _Fail as fail:
        context.report(fail, rule)
    except (SpecError, SpecErrors) as exc:
        context.report(exc, rule, _label_of(node))
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
    node: YNode, rule: str, context: _Context, has_guest_key: bool
) -> CompiledEvent | None:
    dialect = context.dialect
    if not node.is_map:
        raise _Fail(node.line, "an event is a mapping with type (or custom) and fields")
    for key in node.value:
        if key not in _EVENT_KEYS:
            context.report(
                _Fail(node.key_lines[key], f"unknown key {key!r}{suggest(key, _EVENT_KEYS)}"), rule
            )
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
        elif custom_node.is_scalar:  # a number or boolean: every record would fail with it
            raise _Fail(
                custom_node.line,
                f"an event name or a spec that computes one ({{path: ...}}), "
                f"not {custom_node.value!r}",
                "custom",
            )
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
    when = None
    if when_node is not None:
        try:
            when = compile_condition(when_node)
        except SpecError as exc:
            context.report(exc, rule, label)

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
    merged = [e for e in context.default_fields if e[0] in fields and e[0] not in own_keys] + own
    built = compile_object(merged, fields_node, Target("model", model=model), "")
    # Custom names are never reserved (checked above and per record): the custom model.
    encode = dialect.encoder(str(event_type) if type_of is None else CUSTOM)
    return CompiledEvent(label, event_type, type_of, when, built.evaluate, encode)
