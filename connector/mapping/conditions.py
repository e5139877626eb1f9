"""Where a rule applies: its ``topics`` / ``topic_pattern`` and its ``when`` condition.

Compile problems raise :class:`SpecError` with the line; the compiler reports
them against the rule.
"""

from __future__ import annotations

import re
from typing import Any

from connector.mapping import paths, uses
from connector.mapping.expressions import SpecError
from connector.yaml_lines import YNode

__all__ = ["compile_condition", "compile_pattern", "compile_topics", "condition_text"]


def compile_topics(node: YNode | None) -> frozenset[str] | None:
    """``topics:`` a name or a list of names (None when absent)."""
    if node is None:
        return None
    items = node.value if node.is_seq else [node]
    names = [item.value for item in items]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(node.line, "topics", "topics is a topic name or a list of topic names")
    return frozenset(names)


def compile_pattern(node: YNode | None) -> re.Pattern[str] | None:
    """``topic_pattern:`` a regex the whole topic name must match (None when absent)."""
    if node is None:
        return None
    if not isinstance(node.value, str):
        raise SpecError(node.line, "topic_pattern", "topic_pattern is a regular expression string")
    try:
        return re.compile(node.value)
    except re.error as exc:
        raise SpecError(
            node.line, "topic_pattern", f"topic_pattern is not a valid regular expression: {exc}"
        ) from exc


def compile_condition(node: YNode) -> paths.Getter:
    """``when``: a JMESPath expression, or ``{path: value | [values]}`` (all must hold)."""
    if node.is_scalar and isinstance(node.value, str):
        try:
            getter = paths.compile_path(node.value)
        except paths.PathSyntaxError as exc:
            raise SpecError(
                node.line, "", f"when: invalid expression {node.value!r}: {exc}"
            ) from exc
        uses.record(node.value, node.line, "when", None)
        return getter
    if node.is_map and node.value:
        checks = []
        for key, child in node.items():
            line = node.key_lines[key]
            try:
                getter = paths.compile_path(key)
            except paths.PathSyntaxError as exc:
                raise SpecError(line, "", f"when: invalid path {key!r}: {exc}") from exc
            uses.record(key, line, "when", None)
            wanted = child.to_python()
            checks.append((getter, tuple(wanted) if isinstance(wanted, list) else None, wanted))
        return _all_equal(tuple(checks))
    raise SpecError(
        node.line,
        "",
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


def condition_text(node: YNode | None) -> str:
    """The condition as written, for messages."""
    if node is None:
        return ""
    if node.is_scalar:
        return str(node.value)
    return ", ".join(f"{k}: {v.to_python()!r}" for k, v in node.items())
