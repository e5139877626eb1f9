"""``cdp-connector test``: cases written beside a mapping, run without Kafka or HTTP.

Modelled on Redpanda Connect's ``rpk connect test``: a test file names the
mapping it tests and lists cases; each gives a record and the outcome
expected of it, and the command prints a diff for every case that differs
and exits 0 when all pass, 1 when any failed (2: a file is invalid).

```yaml
mapping: mappings.example.yaml        # relative to this file
dialect: asyncapi                     # optional (default: the mapping's dialect:, else asyncapi)
schema: ../avro/clickstream-v2.avsc   # optional: records go through the run's decoder
topic: clickstream                    # optional default for every case
points_of_sale: [shop.example.com]    # optional: pos is checked against them, as in the run
tests:
  - name: a page view
    record: {event_type: PAGE_VIEW, ...}     # or avro: some.avro (+ index: N)
    schema: ../avro/clickstream-v1.avsc      # optional: this case's records' schema
    expect:
      events: [{type: VIEW, ...}]            # the exact bodies, in order
  - name: bots are skipped
    record: {...}
    expect: {skipped: bots}                  # the rule that skipped it
  - name: no email
    record: {...}
    expect: {failed: email}                  # the field the error names (+ error: text)
  - name: an unknown event type
    record: {...}
    expect: {no_match: true}                 # no rule matched (skipped or dead-lettered)
  - name: a shop the tenant does not have
    record: {...}
    expect: {dead_lettered: "not in"}        # dead-lettered, the reason containing this
```

A FILE is a test file when it has ``tests:``, whatever its name; any other FILE is
a mapping, whose tests are ``<mapping>.test.yaml`` beside it or the test file in
its folder that names it (``mapping:``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from connector.commands.dry_run import (
    add_points_of_sale,
    as_decoded,
    check_input_paths,
    check_paths,
    compile_for,
    note,
    points_of_sale,
    pos_note,
    read_avro_file,
)
from connector.decode.schemas import load_schema
from connector.errors import ConfigError, DecodeError, MappingError
from connector.mapping.avro_shape import shape_of
from connector.mapping.compiler import PointsOfSale
from connector.mapping.mapper import NO_MATCH, Mapper, MapResult
from connector.mapping.problems import Problems, suggest
from connector.yaml_lines import YNode, load_yaml

__all__ = ["add_parser", "run_file", "tests_beside"]

_FILE_KEYS = ("mapping", "dialect", "schema", "topic", "points_of_sale", "tests")
_CASE_KEYS = ("name", "topic", "schema", "record", "avro", "index", "expect")
_OUTCOMES = ("events", "skipped", "failed", "no_match", "dead_lettered")
_EXPECT_KEYS = (*_OUTCOMES, "error")
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
    add_points_of_sale(parser)
    parser.set_defaults(func=_main)


def _is_test_file(root: YNode) -> bool:
    return root.is_map and "tests" in root.value


def tests_beside(path: Path) -> Path:
    """The test file of ``path``: itself when it has ``tests:`` (whatever its name), else
    ``<stem>.test.yaml`` beside it, else the test file in its folder whose ``mapping:``
    names it. ConfigError when there is none."""
    if _is_test_file(load_yaml(path)):
        return path
    for suffix in (".test.yaml", ".test.yml"):
        beside = path.with_name(path.stem + suffix)
        if beside.is_file() and _is_test_file(load_yaml(beside)):
            return beside
    for candidate in sorted([*path.parent.glob("*.yaml"), *path.parent.glob("*.yml")]):
        if candidate == path:
            continue
        try:
            root = load_yaml(candidate)
        except ConfigError:
            continue
        named = root.get("mapping") if _is_test_file(root) else None
        if named is not None and (path.parent / str(named.value)).resolve() == path.resolve():
            return candidate
    raise ConfigError(
        f"{path}: a mapping without tests: no {path.stem}.test.yaml beside it, and no test "
        "file in its folder names it (a test file has mapping: and tests:)"
    )


@dataclass
class _Case:
    name: str
    line: int
    topic: str
    record: dict[str, Any] | None
    problem: str
    expect: YNode
    schema: tuple[str, Any] | None  # (as written, parsed)


@dataclass
class _Ran:
    case: _Case
    diff: list[str]
    rule: str | None  # the rule the record went to (None: none matched)


def _main(args: argparse.Namespace) -> int:
    failed = total = 0
    pos = points_of_sale(args.points_of_sale)
    for path in args.files:
        passed, count = run_file(tests_beside(path), sys.stdout, pos)
        failed += count - passed
        total += count
    print(f"{total} test{'s' if total != 1 else ''}, {failed} failed")
    return 1 if failed else 0


def run_file(path: Path, out: TextIO, pos: PointsOfSale | None = None) -> tuple[int, int]:
    """Run the cases of one test file; prints per case; returns (passed, total).

    ``pos``: the tenant's points of sale from the command line (else the file's)."""
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
    pos = pos or _file_points_of_sale(root, path, problems)
    problems.raise_if_any()
    assert mapping_node is not None and tests_node is not None  # noqa: S101 - checked above
    folder = path.parent
    dialect_node, schema_node = root.get("dialect"), root.get("schema")
    topic_node = root.get("topic")
    mapper, dialect = compile_for(
        folder / mapping_node.value,
        str(dialect_node.value) if dialect_node else None,
        f"{path.name}'s dialect:",
        pos,
        f"the default: {path.name} has no dialect:",
    )
    if (line := pos_note(dialect, pos)) is not None:
        note(line)
    schemas: dict[str, Any] = {}
    file_schema = _schema(schema_node, folder, schemas) if schema_node else None
    default_topic = str(topic_node.value) if topic_node else _DEFAULT_TOPIC
    cases = [
        _case(node, folder, file_schema, schemas, default_topic, problems)
        for node in tests_node.value
    ]
    problems.raise_if_any()
    ready = [case for case in cases if case is not None]
    _check_against_schemas(mapper, ready, schemas)
    ran = [_run_case(mapper, case) for case in ready]
    _check_against_records(mapper, ran)
    print(f"{path} ({mapper.source}, dialect {dialect.name})", file=out)
    passed = 0
    for result in ran:
        passed += not result.diff
        print(f"  {'ok  ' if not result.diff else 'FAIL'}  {result.case.name}", file=out)
        for line in result.diff:
            print(f"        {line}", file=out)
    return passed, len(ran)


def _file_points_of_sale(root: YNode, path: Path, problems: Problems) -> PointsOfSale | None:
    node = root.get("points_of_sale")
    if node is None:
        return None
    names = node.to_python()
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        problems.add(node.line, "points_of_sale: is a list of point-of-sale names")
        return None
    return PointsOfSale.of(names, f"points_of_sale of {path.name}")


def _schema(node: YNode, folder: Path, schemas: dict[str, Any]) -> tuple[str, Any]:
    """``(as written, parsed)``; each file read once, remembered in ``schemas``."""
    written = str(node.value)
    if written not in schemas:
        schemas[written] = load_schema(folder / written)
    return written, schemas[written]


def _check_against_schemas(mapper: Mapper, cases: list[_Case], schemas: dict[str, Any]) -> None:
    """The rules' paths against each schema the cases name, per topic; a condition's field
    that only another of the file's schemas has is a warning naming that schema."""
    pairs = sorted({(c.topic, c.schema[0]) for c in cases if c.schema is not None})
    for topic, written in pairs:

        def others(written: str = written) -> list[tuple[str, Any]]:
            return [(name, shape_of(s)) for name, s in schemas.items() if name != written]

        check_paths(mapper, schemas[written], topic, others)


def _check_against_records(mapper: Mapper, ran: list[_Ran]) -> None:
    """The cases without a schema: paths against their records (what no record has is named)."""
    for topic in sorted({r.case.topic for r in ran if r.case.schema is None}):
        chosen = [
            r
            for r in ran
            if r.case.schema is None and r.case.topic == topic and r.case.record is not None
        ]
        if chosen:
            records = [r.case.record for r in chosen if r.case.record is not None]
            check_input_paths(mapper, records, topic, [r.rule for r in chosen])


def _case(
    node: YNode,
    folder: Path,
    file_schema: tuple[str, Any] | None,
    schemas: dict[str, Any],
    topic: str,
    problems: Problems,
) -> _Case | None:
    if not node.is_map:
        problems.add(node.line, "a case is a mapping with name, record (or avro), expect")
        return None
    for key in node.value:
        if key not in _CASE_KEYS:
            problems.add(node.key_lines[key], f"unknown key {key!r}{suggest(key, _CASE_KEYS)}")
    name_node, expect = node.get("name"), node.get("expect")
    name = str(name_node.value) if name_node else f"case at line {node.line}"
    outcomes = ", ".join(_OUTCOMES)
    if expect is None or not expect.is_map:
        problems.add(node.line, f"case {name!r}: expect: is one of {outcomes}")
        return None
    given = [k for k in _OUTCOMES if k in expect.value]
    unknown = [k for k in expect.value if k not in _EXPECT_KEYS]
    if len(given) != 1 or unknown:
        hint = suggest(unknown[0], _EXPECT_KEYS) if unknown else ""
        problems.add(expect.line, f"case {name!r}: expect exactly one of {outcomes}{hint}")
        return None
    if "error" in expect.value and given != ["failed"]:
        problems.add(expect.value["error"].line, f"case {name!r}: error: goes with failed:")
        return None
    schema_node = node.get("schema")
    schema = _schema(schema_node, folder, schemas) if schema_node else file_schema
    record, problem = _record(node, folder, schema[1] if schema else None, name, problems)
    case_topic = str(node.value["topic"].value) if "topic" in node.value else topic
    return _Case(name, node.line, case_topic, record, problem, expect, schema)


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


def _run_case(mapper: Mapper, case: _Case) -> _Ran:
    """The case run: no diff when it passes, else the lines explaining how it differs."""
    if case.record is None:
        return _Ran(case, [case.problem], None)
    result: MapResult | None = None
    error = ""
    rule: str | None = None
    try:
        result = mapper.map(case.record, case.topic)
    except MappingError as exc:
        error, rule = str(exc), exc.rule
    if result is not None:
        if result.events:
            rule = result.events[0].rule
        elif result.skipped_by != NO_MATCH:
            rule = result.skipped_by
    return _Ran(case, _compare(case.expect, result, error), rule)


def _compare(expect: YNode, result: MapResult | None, error: str) -> list[str]:
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
    if "no_match" in expect.value:
        unmatched = (
            result is not None and result.skipped_by == NO_MATCH and not result.events
        ) or (result is None and error.startswith("no rule matched"))
        if unmatched:
            return []
        return ["expected: no rule matched", f"got:      {got}"]
    if "dead_lettered" in expect.value:
        reason = expect.value["dead_lettered"].value
        text = "" if reason is True else str(reason)
        if result is None and text in error:
            return []
        wanted = "dead-lettered" + (f", the reason containing {text!r}" if text else "")
        return [f"expected: {wanted}", f"got:      {got}"]
    wanted_events = expect.value["events"].to_python()
    if result is None or not result.events:
        return [f"expected: {len(wanted_events or [])} event(s)", f"got:      {got}"]
    bodies = [json.loads(event.body) for event in result.events]
    if bodies == wanted_events:
        return []
    return _diff(wanted_events, bodies)


def _outcome(result: MapResult | None, error: str) -> str:
    if result is None:
        return f"dead-lettered: {error}"
    if not result.events:
        if result.skipped_by == NO_MATCH:
            return "skipped: no rule matched"
        return f"skipped by {result.skipped_by!r}"
    return f"{len(result.events)} event(s) by rule {result.events[0].rule!r}"


def _diff(wanted: Any, got: Any) -> list[str]:
    def lines(value: Any) -> list[str]:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    return list(
        difflib.unified_diff(lines(wanted), lines(got), "expected", "got", lineterm="", n=2)
    )
