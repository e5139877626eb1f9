"""Compile a mapping file into a :class:`Mapper`, checking it against the dialect.

Every rule is checked at start-up against the target event models: unknown
event types, fields the event does not have (with where a key in the wrong place
belongs), required fields without an expression, invalid expressions, unknown or
misused transforms, and every value known before the first record — constants,
defaults, lookup tables — against everything its field demands
(``connector.mapping.fit``), ``ext`` names, and ``pos`` against the tenant's points
of sale when they are given. All are reported together in one pass, each with the
file, line, rule and field (a problem in ``defaults.fields`` once, as the
defaults'). A file's ``dialect:`` must be the dialect compiled for; rules that fail
for it but compile for another dialect say so. Every path the rules read is noted
(``Mapper.path_uses``) so it can be checked against a writer schema
(``connector.mapping.pathcheck``).

Pure and reusable: everything is decided from the mapping text, the dialect and the
points of sale; nothing here reads a config, a registry or the network.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

from connector.errors import ConfigError, InternalError
from connector.mapping import fit, lookups, uses
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
)
from connector.mapping.mapper import CompiledEvent, CompiledRule, Mapper
from connector.mapping.problems import Problems, suggest
from connector.mapping.protocol import DialectLike
from connector.mapping.targets import Target, model_fields
from connector.yaml_lines import YNode, load_yaml, parse_yaml

__all__ = ["PointsOfSale", "compile_mapping", "compile_text", "declared_dialect"]

CUSTOM = "CUSTOM"
_TOP_KEYS = ("version", "dialect", "defaults", "rules")
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


@dataclass(frozen=True)
class PointsOfSale:
    """The tenant's points of sale and where the list comes from (for messages).

    Sitecore answers an event whose ``pos`` it does not know with success and drops
    it, so ``pos`` is held against this list: a constant (or a lookup's outputs) when
    the mapping compiles, a value read from the record per record (a MappingError).
    """

    names: frozenset[str]
    source: str = "cdp.points_of_sale"

    @classmethod
    def of(cls, names: Iterable[str], source: str = "cdp.points_of_sale") -> PointsOfSale:
        return cls(frozenset(names), source)


def compile_mapping(
    path: Path,
    dialect: DialectLike,
    *,
    points_of_sale: PointsOfSale | None = None,
    others: Collection[DialectLike] = (),
    dialect_from: str = "cdp.dialect",
) -> Mapper:
    """Load and compile a mapping file for ``dialect``; any problem is a ConfigError.

    Lookup files it names are read relative to the file's folder, once each.
    ``points_of_sale``: the tenant's, when known (``pos`` is checked against them).
    ``others``: the other dialects there are; when the rules fail for ``dialect`` but
    compile for one of them, the error says so. ``dialect_from`` names where
    ``dialect`` was chosen (``cdp.dialect``, ``--dialect``) in those messages.
    """
    with lookups.relative_to(Path(path).parent):
        return _compile(
            load_yaml(Path(path)),
            str(path),
            dialect,
            _Options(points_of_sale, others, dialect_from),
        )


def compile_text(
    text: str,
    dialect: DialectLike,
    *,
    filename: str = "<mapping>",
    points_of_sale: PointsOfSale | None = None,
    others: Collection[DialectLike] = (),
    dialect_from: str = "cdp.dialect",
) -> Mapper:
    """Compile mapping rules given as YAML text (tests, embedded configs, an editor)."""
    options = _Options(points_of_sale, others, dialect_from)
    return _compile(parse_yaml(text, filename), filename, dialect, options)


def declared_dialect(path: Path) -> str | None:
    """The dialect a mapping file declares (``dialect: sitecore``), None when it does not.

    For callers that choose the dialect from the file when nothing else chose it."""
    root = load_yaml(Path(path))
    node = root.get("dialect")
    return str(node.value) if node is not None and node.is_scalar else None


@dataclass(frozen=True)
class _Options:
    points_of_sale: PointsOfSale | None = None
    others: Collection[DialectLike] = ()
    dialect_from: str = "cdp.dialect"


def _compile(
    root: YNode, filename: str, dialect: DialectLike, options: _Options | None = None
) -> Mapper:
    options = options or _Options()
    errors = Problems(filename)
    if not root.is_map:
        raise ConfigError(f"{filename}:{root.line}: expected a mapping with defaults and rules")
    _check_declared_dialect(root, filename, dialect, options)
    for key in root.value:
        if key not in _TOP_KEYS:
            hint = suggest(key, _TOP_KEYS) or _top_key_home(key, dialect)
            errors.add(root.key_lines[key], f"unknown key {key!r}{hint}")
    version = root.get("version")
    if version is not None and version.value != 1:
        errors.add(version.line, "only version: 1 is supported")

    with uses.recording() as recorder:
        defaults = root.get("defaults") or YNode({}, root.line, "map")
        on_no_match, guest_key, default_fields = _defaults(defaults, dialect, errors)
        context = _Context(
            dialect, default_fields, guest_key is not None, errors, options.points_of_sale
        )

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
    if errors.messages and root.get("dialect") is None:
        errors.notes += _fits_another(root, filename, dialect, options)
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
        points_of_sale=options.points_of_sale.names if options.points_of_sale else None,
        points_of_sale_from=options.points_of_sale.source if options.points_of_sale else "",
    )


def _check_declared_dialect(
    root: YNode, filename: str, dialect: DialectLike, options: _Options
) -> None:
    """``dialect:`` in the file must be the dialect compiled for: one clear error if not."""
    node = root.get("dialect")
    if node is None:
        return
    line = root.key_lines["dialect"]
    known = sorted({dialect.name, *(o.name for o in options.others)})
    if not (node.is_scalar and isinstance(node.value, str)) or (
        options.others and node.value not in known
    ):
        raise ConfigError(
            f"{filename}:{line}: dialect: {node.to_python()!r} is not a dialect "
            f"({', '.join(known)}){suggest(str(node.value), known)}"
        )
    if node.value != dialect.name:
        raise ConfigError(
            f"{filename}:{line}: the mapping is written for the {node.value} dialect "
            f"(dialect: {node.value}), but {options.dialect_from} is {dialect.name}: "
            "make the two agree"
        )


def _fits_another(root: YNode, filename: str, dialect: DialectLike, options: _Options) -> list[str]:
    """A note when the rules that fail for ``dialect`` compile for another dialect."""
    notes = []
    for other in options.others:
        if other.name == dialect.name:
            continue
        try:
            _compile(root, filename, other, _Options(options.points_of_sale))
        except ConfigError:
            continue
        notes.append(
            f"these rules compile for the {other.name} dialect, not {dialect.name} (from "
            f"{options.dialect_from}); a mapping file can say dialect: {other.name}"
        )
    return notes


def _payload_fields(dialect: DialectLike) -> set[str]:
    return {key for model in dialect.models.values() for key in model_fields(model)}


def _top_key_home(key: str, dialect: DialectLike) -> str:
    """Where a key written at the top of the file belongs."""
    if key in _DEFAULT_KEYS:
        return f" ({key} goes under defaults:)"
    if key in _RULE_KEYS:
        return f" ({key} is a rule's: each rule is an item of the list under rules:)"
    if key in _payload_fields(dialect):
        return " (payload fields go under defaults: fields:, or under a rule's emit: fields:)"
    return ""


def _rule_key_home(key: str, dialect: DialectLike) -> str:
    """Where a key written in a rule (beside name, when, emit) belongs."""
    if key in ("on_no_match",):
        return " (on_no_match goes under defaults:)"
    if key in _EVENT_KEYS:
        return f" ({key} is an event's: put it under emit:)"
    if key in _payload_fields(dialect):
        return " (payload fields go under emit: fields:)"
    return ""


def _event_key_home(key: str, dialect: DialectLike) -> str:
    """Where a key written in an event (beside type, fields) belongs."""
    if key in _RULE_KEYS:
        return f" ({key} is the rule's: put it beside name:, not under emit:)"
    if key in _payload_fields(dialect):
        return " (payload fields go under fields:)"
    return ""


class _Context:
    """What every rule is compiled with: the dialect, the defaults, the problem list."""

    def __init__(
        self,
        dialect: DialectLike,
        default_fields: list[tuple[str, YNode, int]],
        has_guest_key: bool,
        errors: Problems,
        points_of_sale: PointsOfSale | None = None,
    ) -> None:
        self.dialect = dialect
        self.default_fields = default_fields
        self.has_guest_key = has_guest_key
        self.errors = errors
        self.points_of_sale = points_of_sale
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
            hint = suggest(key, _RULE_KEYS) or _rule_key_home(key, context.dialect)
            context.report(_Fail(node.key_lines[key], f"unknown key {key!r}{hint}"), name)
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
            hint = suggest(key, _EVENT_KEYS) or _event_key_home(key, dialect)
            context.report(_Fail(node.key_lines[key], f"unknown key {key!r}{hint}"), rule)
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
            name_field = model_fields(model).get("type")
            wrong = fit.problem(event_type, name_field.target) if name_field else None
            if wrong is not None:
                raise _Fail(custom_node.line, f"custom event name {wrong}", "custom")
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
    overrides = {}
    pos = context.points_of_sale
    if pos is not None and "pos" in fields:
        overrides["pos"] = replace(fields["pos"].target, allowed=pos.names, allowed_from=pos.source)
    built = compile_object(
        merged, fields_node, Target("model", model=model), "", overrides=overrides
    )
    # Custom names are never reserved (checked above and per record): the custom model.
    encode = dialect.encoder(str(event_type) if type_of is None else CUSTOM)
    return CompiledEvent(label, event_type, type_of, when, built.evaluate, encode)
