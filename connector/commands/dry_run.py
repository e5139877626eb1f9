"""``cdp-connector map``: show what the mapping rules make of some records, offline.

Reads decoded records from a file — JSON lines (one record per line) or an
Avro object container file — maps each with the compiled rules and prints the
rule that matched and the exact JSON bodies that would be posted, or why the
record was skipped or failed. No Kafka, no HTTP.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, TextIO

from connector.cdp.dialect import get_dialect, other_dialects
from connector.decode.decoders import SchemalessAvroDecoder
from connector.decode.schemas import load_schema
from connector.errors import ConfigError, DecodeError, MappingError
from connector.mapping.avro_json import from_json
from connector.mapping.compiler import PointsOfSale, compile_mapping, declared_dialect
from connector.mapping.mapper import NO_MATCH, Mapper, MapResult
from connector.mapping.pathcheck import check_input
from connector.mapping.protocol import DialectLike
from connector.settle.record_paths import Versions, check_schema, topic_schema

__all__ = [
    "add_parser",
    "add_points_of_sale",
    "as_decoded",
    "check_input_paths",
    "check_paths",
    "compile_for",
    "load_dialect",
    "note",
    "points_of_sale",
    "pos_note",
    "read_avro_file",
    "run",
]


def _no_versions() -> list[Any]:
    return []


_AVRO_MAGIC = b"Obj\x01"


def add_parser(sub: Any) -> None:
    """Register the ``map`` subcommand on the CLI's subparsers."""
    parser = sub.add_parser(
        "map",
        help="dry run: map records from a file and print the CDP events (no Kafka, no HTTP)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config",
        type=Path,
        help="connector.yaml: take the mapping, dialect, topic (and its schema) and points of "
        "sale from it",
    )
    source.add_argument("--mapping", type=Path, help="mapping rules YAML file")
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        help="decoded records: JSON lines, or an Avro object container file",
    )
    parser.add_argument(
        "--dialect",
        default=None,
        help="CDP dialect: asyncapi, sitecore, or module:attribute of a custom one (default: "
        "the config's, else the mapping file's dialect:, else asyncapi)",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        help="Avro schema (.avsc) of the records: the reader schema of an Avro container "
        "file, or the schema JSON lines are decoded with (logical types as in the run); "
        "record paths are checked against it (or against an Avro file's own schema)",
    )
    add_points_of_sale(parser)
    parser.add_argument(
        "--topic",
        default=None,
        help="topic the records are taken to come from (default: the config's first topic, "
        "else clickstream)",
    )
    parser.add_argument("--pretty", action="store_true", help="indent the JSON bodies")
    parser.add_argument(
        "--output",
        choices=("text", "jsonl"),
        default="text",
        help="text for people (default), jsonl for scripts: one JSON object per record",
    )
    parser.set_defaults(func=run)


def add_points_of_sale(parser: argparse.ArgumentParser) -> None:
    """``--points-of-sale``: the tenant's, where no config says them (``map``, ``test``)."""
    parser.add_argument(
        "--points-of-sale",
        metavar="POS[,POS...]",
        help="the tenant's points of sale, comma-separated: an event whose pos is not one of "
        "them is refused, as in the run (default: the config's cdp.points_of_sale)",
    )


def points_of_sale(text: str | None, source: str = "--points-of-sale") -> PointsOfSale | None:
    """The ``--points-of-sale`` list (None when not given)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError("--points-of-sale: give one or more names, comma-separated")
    return PointsOfSale.of(names, source)


def pos_note(dialect: DialectLike, pos: PointsOfSale | None) -> str | None:
    """The one line saying ``pos`` was not checked (sitecore, where it matters, without a
    list), else None."""
    if pos is not None or dialect.name != "sitecore":
        return None
    return (
        "pos not checked against the tenant's points of sale (Sitecore drops events with an "
        "unknown one): give --points-of-sale a,b"
    )


def load_dialect(name: str) -> DialectLike:
    """A dialect by name (``asyncapi``, ``sitecore``), or ``module:attribute`` (a Dialect or
    a factory of one)."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load dialect {name!r}: {exc}") from exc
        dialect: DialectLike = found() if callable(found) else found
        return dialect
    named: DialectLike = get_dialect(name)
    return named


def compile_for(
    mapping: Path,
    dialect_name: str | None,
    dialect_from: str,
    pos: PointsOfSale | None,
    default_from: str = "the default: no --dialect given",
) -> tuple[Mapper, DialectLike]:
    """The mapping compiled for ``dialect_name`` (chosen by ``dialect_from``), else for the
    dialect the file declares, else for asyncapi (``default_from``); the other dialects are
    named when the rules fit one of them instead."""
    declared = declared_dialect(mapping)
    if dialect_name is None:
        dialect_from = default_from
        if declared is not None and declared not in {d.name for d in other_dialects("")}:
            declared = None  # not a dialect: the compiler says so, at its line
    name = dialect_name or declared or "asyncapi"
    dialect = load_dialect(name)
    others = other_dialects(name) if ":" not in name else ()
    mapper = compile_mapping(
        mapping, dialect, points_of_sale=pos, others=others, dialect_from=dialect_from
    )
    return mapper, dialect


@dataclass
class _Tally:
    mapped: int = 0
    events: int = 0
    skipped: int = 0
    failed: int = 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the dry run; 0 if every record mapped or was skipped, 1 if any failed."""
    try:
        return _run(args, out or sys.stdout)
    except BrokenPipeError:
        # Output piped into `head` and closed early: stop quietly with the shell's SIGPIPE
        # status (the records after the cut were not checked, so neither 0 nor 1 is true).
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed stdout for exit
        return 141


def _from_config(args: argparse.Namespace) -> None:
    """Fill mapping, dialect, topic and points of sale from connector.yaml where not given."""
    args.settings = None
    args.dialect_from = "--dialect"
    args.pos = points_of_sale(args.points_of_sale)
    if args.config is not None:
        from connector.config import load_config

        settings = args.settings = load_config(args.config)
        args.mapping = settings.mapping
        if args.dialect is None:
            args.dialect, args.dialect_from = settings.cdp.dialect, "cdp.dialect"
        first = settings.topics[0]
        args.topic = args.topic or first.name or "clickstream"
        if args.pos is None and settings.cdp.points_of_sale:
            args.pos = PointsOfSale.of(settings.cdp.points_of_sale)
    args.topic = args.topic or "clickstream"


def note(text: str) -> None:
    """One line on stderr that says what was (not) checked."""
    print(f"cdp-connector: note: {text}", file=sys.stderr)


def _run(args: argparse.Namespace, stream: TextIO) -> int:
    _from_config(args)
    mapper, dialect = compile_for(args.mapping, args.dialect, args.dialect_from, args.pos)
    if (line := pos_note(dialect, args.pos)) is not None:
        note(line)
    schema = _input_schema(args.input, args.schema)
    versions: Versions = _no_versions
    decode_with = load_schema(args.schema) if args.schema is not None else None
    if schema is None and args.settings is not None:
        schema, versions = _config_schema(args.settings, args.topic)
        decode_with = schema  # JSON lines are decoded with the topic's schema, as run does
    if schema is not None:
        check_paths(mapper, schema, args.topic, versions)
    read = list(_read(args.input, decode_with))
    outcomes = [
        (where, *_map_one(mapper, record, problem, args.topic)) for where, record, problem in read
    ]
    if schema is None:
        seen = [(record, out[3]) for (_, record, _), out in zip(read, outcomes, strict=True)]
        pairs = [(record, rule) for record, rule in seen if record is not None]
        check_input_paths(mapper, [r for r, _ in pairs], args.topic, [m for _, m in pairs])
    tally = _Tally()
    for where, result, error, _rule in outcomes:
        if result is None:
            tally.failed += 1
        elif result.events:
            tally.mapped += 1
            tally.events += len(result.events)
        else:
            tally.skipped += 1
        if args.output == "jsonl":
            _print_json(stream, where, result, error)
        else:
            _print_text(stream, where, result, error, pretty=args.pretty)
    if args.output == "text":
        print(
            f"--- {tally.mapped + tally.skipped + tally.failed} records: {tally.mapped} mapped "
            f"({tally.events} events), {tally.skipped} skipped, {tally.failed} failed "
            f"[{mapper.source}, dialect {dialect.name}, topic {args.topic}]",
            file=stream,
        )
    return 1 if tally.failed else 0


def _map_one(
    mapper: Mapper, record: dict[str, Any] | None, problem: str, topic: str
) -> tuple[MapResult | None, str, str | None]:
    """``(result, error, rule)`` of one record: ``rule`` is the rule it went to (None: no
    rule matched, or the record was not read)."""
    if record is None:
        return None, problem, None
    try:
        result = mapper.map(record, topic)
    except MappingError as exc:
        return None, str(exc), exc.rule
    if result.events:
        return result, "", result.events[0].rule
    rule = result.skipped_by if result.skipped_by != NO_MATCH else None
    return result, "", rule


def check_input_paths(
    mapper: Mapper, records: list[dict[str, Any]], topic: str, matched: list[str | None]
) -> None:
    """Without a schema: the rules' paths against the input records themselves; what no
    record has is named (with the closest field one has), and one line says so."""
    for warning in check_input(mapper, records, topic, matched):
        print(f"cdp-connector: warning: {warning}", file=sys.stderr)
    count = len(records)
    note(
        f"record paths checked against the {count} input record{'s' if count != 1 else ''} "
        "only (no schema: --schema checks them against the records' schema)"
    )


def _print_text(
    stream: TextIO, where: str, result: MapResult | None, error: str | None, *, pretty: bool
) -> None:
    if result is None:
        print(f"{where}: FAILED: {error}", file=stream)
        return
    if not result.events:
        reason = (
            "no rule matched" if result.skipped_by == "no-match" else f"rule {result.skipped_by!r}"
        )
        print(f"{where}: skipped ({reason})", file=stream)
        return
    count = len(result.events)
    print(
        f"{where}: rule {result.events[0].rule!r} → {count} event{'s' if count > 1 else ''}",
        file=stream,
    )
    for event in result.events:
        body = event.body.decode("utf-8")
        if pretty:
            body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        print(f"  {event.event_type} (guest {event.guest_key})", file=stream)
        print("  " + body.replace("\n", "\n  "), file=stream)


def _print_json(stream: TextIO, where: str, result: MapResult | None, error: str | None) -> None:
    line: dict[str, Any] = {"record": where}
    if result is None:
        line["error"] = error
    elif result.events:
        line["rule"] = result.events[0].rule
        line["events"] = [
            {"type": e.event_type, "guest_key": e.guest_key, "body": json.loads(e.body)}
            for e in result.events
        ]
    else:
        line["skipped_by"] = result.skipped_by
    print(json.dumps(line, ensure_ascii=False), file=stream)


def check_paths(
    mapper: Mapper, schema: Any, topic: str | None, versions: Versions | None = None
) -> None:
    """ConfigError listing every path of the rules for ``topic`` the schema cannot have.

    Warnings (conditions on fields only another known version of the schema has) go
    to stderr. ``versions``: those other versions, asked for only when needed.
    """
    problems, warnings = check_schema(mapper, schema, versions or _no_versions, topic=topic)
    for warning in warnings:
        print(f"cdp-connector: warning: {warning}", file=sys.stderr)
    if problems:
        count = len(problems)
        raise ConfigError(
            f"{count} record path problem{'s' if count > 1 else ''} against the schema:\n  "
            + "\n  ".join(problems)
        )


def _config_schema(settings: Any, topic: str) -> tuple[Any, Versions]:
    """The schema the config gives ``topic`` (local, or the subject's latest) and its other
    versions, for path checks and to decode JSON lines with."""
    try:
        schema, _, warnings, versions = topic_schema(settings, topic)
    except KeyError:
        warnings, schema = [f"topic {topic!r} is not in the config: record paths not checked"], None
        versions = _no_versions
    for warning in warnings:
        print(f"cdp-connector: warning: {warning}", file=sys.stderr)
    return schema, versions


def _is_avro(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == _AVRO_MAGIC
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read input: {exc.strerror or exc}") from exc


def _input_schema(path: Path, schema: Path | None) -> Any:
    """The schema records are shaped by: ``--schema``, else an Avro file's own (or None)."""
    if schema is not None:
        return load_schema(schema)
    if not _is_avro(path):
        return None
    import fastavro

    with path.open("rb") as handle:
        try:
            return fastavro.reader(handle).writer_schema
        except (ValueError, EOFError):
            return None  # reported per record by _read_avro


def _read(path: Path, schema: Any) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """``(where, record or None, problem)`` for every record in the file; ``schema`` (parsed)
    is an Avro file's reader schema, or what JSON lines are decoded with."""
    if _is_avro(path):
        yield from _read_avro(path, schema)
    elif schema is not None:
        yield from _read_json_lines_as_avro(path, schema)
    else:
        yield from _read_json_lines(path)


def _read_json_lines_as_avro(
    path: Path, schema: Any
) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """JSON records written with ``schema`` and read back by the run's own decoder.

    So logical types come out as they do in ``run`` (timestamp-millis → datetime,
    date → date, decimal → Decimal) and the preview is what would be posted.
    """
    decoder = SchemalessAvroDecoder(schema)
    for where, record, problem in _read_json_lines(path):
        if record is None:
            yield where, None, problem
            continue
        try:
            yield where, as_decoded(record, schema, decoder), ""
        except DecodeError as exc:
            yield where, None, str(exc)


def as_decoded(
    record: dict[str, Any], schema: Any, decoder: SchemalessAvroDecoder | None = None
) -> dict[str, Any]:
    """``record`` (JSON values) written with ``schema`` and read back as ``run`` reads it.

    DecodeError when it does not fit the schema.
    """
    import fastavro

    buffer = BytesIO()
    try:
        fastavro.schemaless_writer(buffer, schema, from_json(schema, record))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DecodeError(f"does not fit the schema: {exc}") from exc
    return (decoder or SchemalessAvroDecoder(schema)).decode(buffer.getvalue())


def _read_json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, None, f"not valid JSON: {exc}"
                continue
            if not isinstance(record, dict):
                yield where, None, f"expected a JSON object, got {type(record).__name__}"
                continue
            yield where, record, ""


def read_avro_file(path: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The writer schema and the records of an Avro container file."""
    records: list[dict[str, Any]] = []
    for where, record, problem in _read_avro(path, None):
        if record is None:
            raise ConfigError(f"{path}: {where}: {problem}")
        records.append(record)
    return _input_schema(path, None), records


def _read_avro(path: Path, reader_schema: Any) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    import fastavro  # only needed for this input kind

    with path.open("rb") as handle:
        try:
            for number, record in enumerate(
                fastavro.reader(handle, reader_schema=reader_schema), start=1
            ):
                if isinstance(record, dict):
                    yield f"record {number}", record, ""
                else:
                    yield f"record {number}", None, "the file's schema is not a record"
        except (ValueError, EOFError) as exc:  # fastavro's errors for corrupt blocks
            yield "file", None, f"cannot read the Avro file {path}: {exc}"
