"""``cdp-connector test``: cases written beside a mapping, run without Kafka or HTTP.

Modelled on Redpanda Connect's ``rpk connect test``: a test file names the
mapping it tests and lists cases; each gives a record and the outcome
expected of it, and the command prints a diff for every case that differs
and exits 0 when all pass, 1 when any failed (2: a file is invalid).

```yaml
mapping: mappings.example.yaml        # relative to this file
dialect: asyncapi                     # optional (default asyncapi)
schema: ../avro/clickstream-v2.avsc   # optional: records go through the run's decoder
topic: clickstream                    # optional default for every case
tests:
  - name: a page view
    record: {event_type: PAGE_VIEW, ...}     # or avro: some.avro (+ index: N)
    expect:
      events: [{type: VIEW, ...}]            # the exact bodies, in order
  - name: bots are skipped
    record: {...}
    expect: {skipped: bots}                  # the rule (no-match: nothing matched)
  - name: no email
    record: {...}
    expect: {failed: email}                  # the field the error names (+ error: text)
```

A FILE may be the test file itself or the mapping, whose tests are then
``<mapping>.test.yaml`` beside it (``mappings.example.yaml`` →
``mappings.example.test.yaml``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from connector.commands.dry_run import as_decoded, check_paths, load_dialect, read_avro_file
from connector.decode.schemas import load_schema
from connector.errors import ConfigError, DecodeError, MappingError
from connector.mapping.compiler import compile_mapping
from connector.mapping.expressions import suggest
from connector.mapping.mapper import Mapper, MapResult
from connector.mapping.problems import Problems
from connector.yaml_lines import YNode, load_yaml

__all__ = ["add_parser", "run_file", "tests_beside"]

_FILE_KEYS = ("mapping", "dialect", "schema", "topic", "tests")
_CASE_KEYS = ("name", "topic", "record", "avro", "index", "expect")
_EXPECT_KEYS = ("events", "skipped", "failed", "error")
_DEFAULT_TOPIC = "clickstream"


def add_parser(sub: Any) -> None:
    """Register the ``test`` subcommand on the CLI's subparsers."""
    parser = sub.add_parser(
        "test",
        help="run mapping test cases (records and the events expected of them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="test or mapping file")
    parser.set_defaults(func=_main)


def tests_beside(path: Path) -> Path:
    """The test file of ``path``: itself when it has ``tests:``, else ``<stem>.test.yaml``."""
    if path.name.endswith((".test.yaml", ".test.yml")):
        return path
    return path.with_name(f"{path.stem}.test.yaml")


@dataclass
class _Case:
    name: str
    line: int
    topic: str
    record: dict[str, Any] | None
    problem: str
    expect: YNode


def _main(args: argparse.Namespace) -> int:
    failed = total = 0
    for path in args.files:
        passed, count = run_file(tests_beside(path), sys.stdout)
        failed += count - passed
        total += count
    print(f"{total} test{'s' if total != 1 else ''}, {failed} failed")
    return 1 if failed else 0


def run_file(path: Path, out: TextIO) -> tuple[int, int]:
    """Run the cases of one test file; prints per case; returns (passed, total)."""
    root = load_yaml(path)
    problems = Problems(str(path), "mapping tests")
    if not root.is_map:
        raise ConfigError(f"{path}:{root.line}: expected mapping:, tests:")
    for key in root.value:
        if key not in _FILE_KEYS:
            problems.add(root.key_lines[key], f"unknown key {key!r}{suggest(key, _FILE_KEYS)}")
    mapping_node, tests_node = root.get("mapping"), root.get("tests")
    if mapping_node is None or not isinstance(mapping_node.value, str):
        problems.add(root.line, "mapping: names the mapping file (relative to this file)")
    if tests_node is None or not tests_node.is_seq or not tests_node.value:
        problems.add(tests_node.line if tests_node else root.line, "tests: is a list of cases")
    problems.raise_if_any()
    assert mapping_node is not None and tests_node is not None  # noqa: S101 - checked above
    folder = path.parent
    dialect_node, schema_node = root.get("dialect"), root.get("schema")
    topic_node = root.get("topic")
    dialect = load_dialect(str(dialect_node.value) if dialect_node else "asyncapi")
    mapper = compile_mapping(folder / mapping_node.value, dialect)
    schema = load_schema(folder / str(schema_node.value)) if schema_node else None
    default_topic = str(topic_node.value) if topic_node else _DEFAULT_TOPIC
    cases = [_case(node, folder, schema, default_topic, problems) for node in tests_node.value]
    problems.raise_if_any()
    if schema is not None:
        for topic in sorted({c.topic for c in cases if c is not None}):
            check_paths(mapper, schema, topic)
    print(f"{path} ({mapper.source}, dialect {dialect.name})", file=out)
    passed = 0
    for case in cases:
        assert case is not None  # noqa: S101 - problems raised above
        diff = _run_case(mapper, case)
        passed += not diff
        print(f"  {'ok  ' if not diff else 'FAIL'}  {case.name}", file=out)
        for line in diff:
            print(f"        {line}", file=out)
    return passed, len(cases)


def _case(node: YNode, folder: Path, schema: Any, topic: str, problems: Problems) -> _Case | None:
    if not node.is_map:
        problems.add(node.line, "a case is a mapping with name, record (or avro), expect")
        return None
    for key in node.value:
        if key not in _CASE_KEYS:
            problems.add(node.key_lines[key], f"unknown key {key!r}{suggest(key, _CASE_KEYS)}")
    name_node, expect = node.get("name"), node.get("expect")
    name = str(name_node.value) if name_node else f"case at line {node.line}"
    if expect is None or not expect.is_map:
        problems.add(node.line, f"case {name!r}: expect: is events:, skipped: or failed:")
        return None
    given = [k for k in _EXPECT_KEYS[:3] if k in expect.value]
    if len(given) != 1 or any(k not in _EXPECT_KEYS for k in expect.value):
        problems.add(expect.line, f"case {name!r}: expect exactly one of events, skipped, failed")
        return None
    record, problem = _record(node, folder, schema, name, problems)
    case_topic = str(node.value["topic"].value) if "topic" in node.value else topic
    return _Case(name, node.line, case_topic, record, problem, expect)


def _record(
    node: YNode, folder: Path, schema: Any, name: str, problems: Problems
) -> tuple[dict[str, Any] | None, str]:
    record_node, avro_node = node.get("record"), node.get("avro")
    if (record_node is None) == (avro_node is None):
        problems.add(node.line, f"case {name!r}: give record: (JSON/YAML) or avro: (a file)")
        return None, ""
    if avro_node is not None:
        _, records = read_avro_file(folder / str(avro_node.value))
        index_node = node.get("index")
        index = int(index_node.value) if index_node else 0
        if not 0 <= index < len(records):
            problems.add(avro_node.line, f"case {name!r}: the file has {len(records)} record(s)")
            return None, ""
        return records[index], ""
    assert record_node is not None  # noqa: S101 - exactly one of the two
    record = record_node.to_python()
    if not isinstance(record, dict):
        problems.add(record_node.line, f"case {name!r}: record is a mapping")
        return None, ""
    if schema is None:
        return record, ""
    try:
        return as_decoded(record, schema), ""
    except DecodeError as exc:
        return None, f"the record does not fit the schema: {exc}"


def _run_case(mapper: Mapper, case: _Case) -> list[str]:
    """Empty when the case passes, else the lines explaining how it differs."""
    if case.record is None:
        return [case.problem]
    expect = case.expect
    result: MapResult | None = None
    error = ""
    try:
        result = mapper.map(case.record, case.topic)
    except MappingError as exc:
        error = str(exc)
    got = _outcome(result, error)
    if "failed" in expect.value:
        field = str(expect.value["failed"].value)
        text = expect.value["error"].value if "error" in expect.value else ""
        if result is None and f"field {field!r}" in error and str(text) in error:
            return []
        wanted = f"failed naming field {field!r}" + (f" with {text!r}" if text else "")
        return [f"expected: {wanted}", f"got:      {got}"]
    if "skipped" in expect.value:
        rule = str(expect.value["skipped"].value)
        if result is not None and not result.events and result.skipped_by == rule:
            return []
        return [f"expected: skipped by {rule!r}", f"got:      {got}"]
    wanted_events = expect.value["events"].to_python()
    if result is None or not result.events:
        return [f"expected: {len(wanted_events or [])} event(s)", f"got:      {got}"]
    bodies = [json.loads(event.body) for event in result.events]
    if bodies == wanted_events:
        return []
    return _diff(wanted_events, bodies)


def _outcome(result: MapResult | None, error: str) -> str:
    if result is None:
        return f"failed: {error}"
    if not result.events:
        return f"skipped by {result.skipped_by!r}"
    return f"{len(result.events)} event(s) by rule {result.events[0].rule!r}"


def _diff(wanted: Any, got: Any) -> list[str]:
    def lines(value: Any) -> list[str]:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    return list(
        difflib.unified_diff(lines(wanted), lines(got), "expected", "got", lineterm="", n=2)
    )
