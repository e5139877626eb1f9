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

from connector.cdp.dialect import get_dialect
from connector.decode.decoders import SchemalessAvroDecoder
from connector.decode.schemas import load_schema
from connector.errors import ConfigError, DecodeError, MappingError
from connector.mapping.avro_json import from_json
from connector.mapping.avro_shape import shape_of
from connector.mapping.compiler import compile_mapping
from connector.mapping.mapper import Mapper, MapResult
from connector.mapping.pathcheck import check_mapper
from connector.mapping.protocol import DialectLike

__all__ = ["add_parser", "as_decoded", "check_paths", "load_dialect", "read_avro_file", "run"]

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
        help="connector.yaml: take the mapping, dialect and topic from it",
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
        help="CDP dialect: asyncapi (default), sitecore, or module:attribute of a custom one",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        help="Avro schema (.avsc) of the records: the reader schema of an Avro container "
        "file, or the schema JSON lines are decoded with (logical types as in the run); "
        "record paths are checked against it (or against an Avro file's own schema)",
    )
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
    """Fill mapping, dialect and topic from connector.yaml where not given."""
    args.settings = None
    if args.config is not None:
        from connector.config import load_config

        settings = args.settings = load_config(args.config)
        args.mapping = settings.mapping
        args.dialect = args.dialect or settings.cdp.dialect
        first = settings.topics[0]
        args.topic = args.topic or first.name or "clickstream"
    args.dialect = args.dialect or "asyncapi"
    args.topic = args.topic or "clickstream"


def _run(args: argparse.Namespace, stream: TextIO) -> int:
    _from_config(args)
    dialect = load_dialect(args.dialect)
    mapper = compile_mapping(args.mapping, dialect)
    schema = _input_schema(args.input, args.schema)
    if schema is None and args.settings is not None:
        schema = _config_schema(args.settings, args.topic)
    if schema is not None:
        check_paths(mapper, schema, args.topic)
    tally = _Tally()
    for where, record, problem in _read(args.input, args.schema):
        result: MapResult | None = None
        error = problem
        if record is not None:
            try:
                result = mapper.map(record, args.topic)
            except MappingError as exc:
                error = str(exc)
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


def check_paths(mapper: Mapper, schema: Any, topic: str | None) -> None:
    """ConfigError listing every path of the rules for ``topic`` the schema cannot have.

    Warnings (conditions on fields the schema lacks) go to stderr.
    """
    problems, warnings = check_mapper(mapper, shape_of(schema), topic)
    for warning in warnings:
        print(f"cdp-connector: warning: {warning}", file=sys.stderr)
    if problems:
        count = len(problems)
        raise ConfigError(
            f"{count} record path problem{'s' if count > 1 else ''} against the schema:\n  "
            + "\n  ".join(problems)
        )


def _config_schema(settings: Any, topic: str) -> Any:
    """The schema the config gives ``topic`` (local, or the subject's latest), for path checks."""
    from connector.settle.record_paths import topic_schema  # the I/O edge; imports this package

    try:
        schema, _, warnings = topic_schema(settings, topic)
    except KeyError:
        warnings, schema = [f"topic {topic!r} is not in the config: record paths not checked"], None
    for warning in warnings:
        print(f"cdp-connector: warning: {warning}", file=sys.stderr)
    return schema


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


def _read(path: Path, schema: Path | None) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """``(where, record or None, problem)`` for every record in the file."""
    if _is_avro(path):
        yield from _read_avro(path, schema)
    elif schema is not None:
        yield from _read_json_lines_as_avro(path, load_schema(schema))
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


def _read_avro(path: Path, schema: Path | None) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    import fastavro  # only needed for this input kind

    reader_schema = load_schema(schema) if schema is not None else None
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
