"""The mapping's record paths against the writer schemas the config knows, at start and after.

``check_record_paths(settings, mapper)`` is what ``run`` calls at start-up (and
``check`` runs as a step), before anything is consumed:

1. Every rule's ``topics:`` / ``topic_pattern`` must match a configured topic;
   one that matches none is an error (its records would all be dead-lettered
   as unmatched).
2. For every configured topic, the schema its records are decoded with: the
   reader schema if set; for ``schemaless`` topics the local writer schema; for
   ``confluent`` topics the latest version of the subject (``subject``, else
   ``<name>-value``, TopicNameStrategy). The rules that apply to the topic are
   held against it (``connector.mapping.pathcheck``); a path that cannot exist,
   or whose type cannot feed its field, is an error naming file:line, rule,
   field and the closest real path. A condition's field that the subject's other
   versions have (read only then) is a warning naming the version. No subject yet,
   a topic pattern without a ``subject``, or a registry that cannot be asked → a
   warning, not an error.
3. The returned :class:`SchemaWatch` is given to the Confluent decoders: the
   first time a writer schema id shows up at runtime the rules are checked
   against it once; what vanished after schema evolution is logged at warning
   and counted (``cdp_connector_mapping_path_problems_total``), never fatal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connector.config import Settings, TopicSettings
from connector.decode.registry import RegistryClient, registry_client
from connector.decode.schemas import ParsedSchema, load_schema
from connector.errors import ConfigError, DecodeError, TransientError
from connector.mapping import Mapper
from connector.mapping.avro_shape import Shape, shape_of
from connector.mapping.pathcheck import check_mapper
from connector.mapping.problems import locate, suggest

__all__ = [
    "PathReport",
    "SchemaWatch",
    "check_record_paths",
    "check_schema",
    "rule_topic_problems",
    "topic_schema",
]

log = logging.getLogger(__name__)


@dataclass
class PathReport:
    """What the start-up check found: errors (fatal), warnings, what was checked."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # "topic against subject s (id 3)"


def rule_topic_problems(settings: Settings, mapper: Mapper) -> list[str]:
    """Rules whose ``topics`` / ``topic_pattern`` match no configured topic."""
    names = [t.name for t in settings.topics if t.name is not None]
    has_patterns = any(t.pattern is not None for t in settings.topics)
    configured = ", ".join(t.subscription for t in settings.topics)
    problems = []
    for rule in mapper.rules:
        for topic in sorted(rule.topics or ()):
            if not any(spec.matches(topic) for spec in settings.topics):
                hint = suggest(topic, names)
                problems.append(
                    locate(
                        mapper.source,
                        rule.line,
                        f"topic {topic!r} is not a configured topic{hint} (topics: {configured})",
                        rule=rule.name,
                        field="topics",
                    )
                )
        pattern = rule.topic_pattern
        if (
            pattern is not None
            and not has_patterns
            and not any(pattern.fullmatch(n) for n in names)
        ):
            problems.append(
                locate(
                    mapper.source,
                    rule.line,
                    f"topic_pattern {pattern.pattern!r} matches no configured topic "
                    f"(topics: {configured})",
                    rule=rule.name,
                    field="topic_pattern",
                )
            )
    return problems


def _rules_for(mapper: Mapper, spec: TopicSettings) -> list[str]:
    if spec.name is not None:
        return [r.name for r in mapper.rules if r.applies_to(spec.name)]
    # A pattern subscription: a rule applies unless its topics are all outside the pattern
    # (whether two regexes overlap cannot be decided, so topic_pattern rules are kept).
    return [
        r.name
        for r in mapper.rules
        if r.topics is None or any(spec.matches(topic) for topic in r.topics)
    ]


Versions = Callable[[], list[tuple[str, Shape]]]


def _no_versions() -> list[tuple[str, Shape]]:
    return []


def _schema_for(
    spec: TopicSettings, registry: Callable[[], RegistryClient | None], report: PathReport
) -> tuple[ParsedSchema | None, str, Versions]:
    """The schema records of ``spec`` are decoded with, where it came from, and how to
    get the other versions its records may be written with (a subject's; asked only when
    a condition reads a field the schema lacks)."""
    if spec.reader_schema is not None:
        return load_schema(spec.reader_schema), f"reader schema {spec.reader_schema}", _no_versions
    if spec.decoder == "schemaless":
        assert spec.schema_path is not None  # noqa: S101 - the config model guarantees it
        return load_schema(spec.schema_path), f"schema {spec.schema_path}", _no_versions
    subject = spec.subject or (f"{spec.name}-value" if spec.name else None)
    what = spec.subscription
    if subject is None:
        report.warnings.append(
            f"topics ~ {what}: record paths not checked: a pattern has no subject "
            "(set subject: to check them at start)"
        )
        return None, "", _no_versions
    client = registry()
    if client is None:
        report.warnings.append(f"topic {what}: record paths not checked: no schema_registry")
        return None, "", _no_versions
    try:
        found = client.latest(subject)
    except (TransientError, DecodeError) as exc:
        report.warnings.append(f"topic {what}: record paths not checked: {exc}")
        return None, "", _no_versions
    if found is None:
        report.warnings.append(
            f"topic {what}: record paths not checked: subject {subject!r} has no schema yet "
            "(they are checked when the first record's schema arrives)"
        )
        return None, "", _no_versions
    schema_id, schema = found

    def versions() -> list[tuple[str, Shape]]:
        try:
            others = client.other_versions(subject, schema_id)
        except (TransientError, DecodeError) as exc:
            report.warnings.append(f"topic {what}: other versions of {subject!r} not read: {exc}")
            return []
        return [
            (f"version {number} of subject {subject} (schema id {found_id})", shape_of(other))
            for number, found_id, other in others
        ]

    return schema, f"subject {subject} (schema id {schema_id})", versions


def topic_schema(
    settings: Settings, topic: str, registry: RegistryClient | None = None
) -> tuple[ParsedSchema | None, str, list[str], Versions]:
    """The schema records of ``topic`` are decoded with, where it came from, warnings,
    and the other versions (a callable: asked only when needed).

    For ``map --config``: the same sources as the start-up check (module docstring).
    """
    report = PathReport()
    spec = settings.topic_for(topic)
    schema, source, versions = _schema_for(spec, _once(registry, settings), report)
    return schema, source, report.warnings, versions


def check_schema(
    mapper: Mapper,
    schema: ParsedSchema,
    versions: Versions,
    *,
    topic: str | None = None,
    rules: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of the rules against ``schema``; the other versions are asked
    for only when something is wrong (a condition's field may be in one of them)."""
    shape = shape_of(schema)
    errors, warnings = check_mapper(mapper, shape, topic, rules=rules)
    if errors:
        others = versions()
        if others:
            errors, warnings = check_mapper(mapper, shape, topic, rules=rules, versions=others)
    return errors, warnings


def _once(
    registry: RegistryClient | None, settings: Settings
) -> Callable[[], RegistryClient | None]:
    """``registry``, or one client built from the settings the first time it is needed."""
    made: list[RegistryClient | None] = []

    def client() -> RegistryClient | None:
        if registry is not None:
            return registry
        if not made:
            made.append(registry_client(settings.schema_registry))
        return made[0]

    return client


def check_record_paths(
    settings: Settings,
    mapper: Mapper,
    registry: RegistryClient | None = None,
    *,
    raise_errors: bool = True,
) -> PathReport:
    """Step 1 and 2 of the module docstring; ConfigError listing every error (if asked).

    Called by ``run`` at start-up (warnings are logged) and by ``check``.
    """
    report = PathReport(errors=rule_topic_problems(settings, mapper))
    client = _once(registry, settings)
    for spec in settings.topics:
        schema, source, versions = _schema_for(spec, client, report)
        if schema is None:
            continue
        topic = spec.name
        errors, warnings = check_schema(mapper, schema, versions, rules=_rules_for(mapper, spec))
        report.errors += errors
        report.warnings += [f"topic {topic or spec.subscription}: {w}" for w in warnings]
        report.checked.append(f"{topic or spec.subscription} against {source}")
    for warning in report.warnings:
        log.warning("mapping %s: %s", mapper.source, warning)
    if raise_errors and report.errors:
        count = len(report.errors)
        raise ConfigError(
            f"{count} problem{'s' if count > 1 else ''} with the mapping's record paths and "
            "topics:\n  " + "\n  ".join(report.errors)
        )
    return report


class SchemaWatch:
    """Checks the rules of a topic against each new writer schema id, once per id (step 3).

    Called by the Confluent decoder on the consumer thread the first time it
    fetches a schema id; never raises (a problem is logged and counted).
    """

    def __init__(
        self, mapper: Mapper, on_problems: Callable[[str, int], None] | None = None
    ) -> None:
        self._mapper = mapper
        self._on_problems = on_problems
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def for_topic(self, topic: str) -> Callable[[int, Any], None]:
        """The hook for the decoder of ``topic``: ``(schema_id, writer_schema) -> None``."""

        def hook(schema_id: int, schema: Any) -> None:
            self.schema_seen(topic, schema_id, schema)

        return hook

    def schema_seen(self, topic: str, schema_id: int, schema: Any) -> list[str]:
        """Check ``topic``'s rules against writer schema ``schema_id``; the problems found."""
        with self._lock:
            if (topic, schema_id) in self._seen:
                return []
            self._seen.add((topic, schema_id))
        try:
            errors, warnings = check_mapper(self._mapper, shape_of(schema), topic)
            problems = errors + warnings
        except Exception:  # a bug here must not stop decoding: logged with its traceback
            log.exception("checking the mapping against schema id %d failed", schema_id)
            return []
        for problem in problems:
            log.warning(
                "topic %s, writer schema id %d: mapping path no longer fits: %s",
                topic,
                schema_id,
                problem,
            )
        if problems and self._on_problems is not None:
            self._on_problems(topic, len(problems))
        return problems
