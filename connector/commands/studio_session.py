"""What the mapping studio computes, without the web server.

``cdp-connector studio`` (:mod:`connector.commands.studio`) serves a page;
every request it answers is one call here, so the page shows exactly what the
command line shows:

1. :meth:`StudioSession.preview` compiles the editor's text with the same
   compiler as ``run`` (``compile_text`` with lookups relative to the mapping
   file), then the start-up record-path check ``run`` does
   (``check_record_paths``); every problem is the CLI's message, split into
   its line and text. Each sample record is then decoded as the run decodes it
   (``as_decoded`` with the topic's schema, as ``map --schema`` does) and
   mapped: its rule and exact JSON bodies (as ``map`` shows them), why it is
   skipped, or the dead-letter reason.
2. :meth:`StudioSession.save_mapping` writes the text back, refusing when the
   file changed on disk since it was loaded (the digest the page holds).
3. :meth:`StudioSession.save_test_case` appends the record and what it
   produces to the mapping's test file (``<mapping>.test.yaml``), in the
   format ``cdp-connector test`` reads, keeping the file's comments.

Nothing here talks to the CDP, and the CDP credentials are never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.commands import field_reference
from connector.commands.dry_run import as_decoded, load_dialect
from connector.commands.mapping_tests import tests_beside
from connector.config import Settings
from connector.decode.decoders import SchemalessAvroDecoder
from connector.decode.registry import RegistryClient
from connector.decode.schemas import ParsedSchema
from connector.errors import ConfigError, ConnectorError, DecodeError, MappingError
from connector.mapping import Mapper, compile_text, lookups
from connector.mapping.mapper import MapResult
from connector.pipeline import mapping_options
from connector.settle import record_paths

__all__ = ["Conflict", "StudioSession", "digest", "split_problems"]

_CUSTOM = "CUSTOM"


class Conflict(ConnectorError):
    """The file changed on disk since the page loaded it: not overwritten."""


def digest(text: str) -> str:
    """The digest the page holds of a file's text, to notice changes on disk."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_problems(text: str, filename: str) -> list[dict[str, Any]]:
    """The CLI's problem message split into ``{line, message}`` (line None: the whole file)."""
    located = re.compile(rf"^\s*{re.escape(filename)}:(\d+): (.*)$")
    problems: list[dict[str, Any]] = []
    lines = text.splitlines()
    for entry in lines[1:] if len(lines) > 1 else lines:
        match = located.match(entry)
        if match:
            problems.append({"line": int(match[1]), "message": match[2]})
        elif entry.strip():
            message = entry.strip().removeprefix(f"{filename}: ").removeprefix(f"{filename}:")
            problems.append({"line": None, "message": message})
    return problems


class _OnceRegistry(RegistryClient):
    """A registry client that asks for a subject's latest schema once per session.

    The page recompiles on every keystroke; the schema it checks against is the one
    the registry had when the studio started (restart the studio for a newer one).
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._latest: dict[str, tuple[int, ParsedSchema] | None] = {}

    def latest(self, subject: str) -> tuple[int, ParsedSchema] | None:
        if subject not in self._latest:
            self._latest[subject] = super().latest(subject)
        return self._latest[subject]


@dataclass
class Compiled:
    """The editor's text compiled: the mapper (None when it has errors) and the reports."""

    mapper: Mapper | None
    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class StudioSession:
    """One studio: the config's mapping, dialect, topic and schema, and the sample records."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        records: list[str],
        *,
        records_schema: tuple[ParsedSchema, str] | None = None,
    ) -> None:
        """``records_schema``: the schema the records were written with and where it is
        from, when not the topic's (an Avro file's own); the paths are still checked
        against the topic's, as ``run`` does."""
        self.settings = settings
        self.topic = topic
        self.records = records
        self.mapping_path = Path(settings.mapping)
        self.dialect = load_dialect(settings.cdp.dialect)
        registry = settings.schema_registry
        self._registry = (
            _OnceRegistry(
                registry.url, timeout=registry.timeout_seconds, basic_auth=registry.basic_auth()
            )
            if registry is not None
            else None
        )
        self.schema, self.schema_source, self.schema_warnings = self._topic_schema()
        if records_schema is not None:
            self.schema, self.schema_source = records_schema
        # One decoder for every preview: making one compiles a reader (~20 ms a record).
        self._decoder = SchemalessAvroDecoder(self.schema) if self.schema is not None else None
        # Previews run on worker threads; one at a time keeps the types in use consistent.
        self._lock = threading.Lock()
        # The page shows the check's warnings itself; the log would repeat them per keystroke.
        logging.getLogger(record_paths.__name__).setLevel(logging.ERROR)
        self._types_in_use: list[str] = []

    def _topic_schema(self) -> tuple[ParsedSchema | None, str, list[str]]:
        try:
            schema, source, warnings, _ = record_paths.topic_schema(
                self.settings, self.topic, self._registry
            )
            return schema, source, warnings
        except KeyError:
            return None, "", [f"topic {self.topic!r} is not in the config: records not decoded"]

    def load(self) -> dict[str, Any]:
        """What the page starts with: the mapping file's text and digest, records, context."""
        text = self.mapping_path.read_text(encoding="utf-8")
        return {
            "mapping": _shown(str(self.mapping_path)),
            "text": text,
            "digest": digest(text),
            "records": self.records,
            "topic": self.topic,
            "dialect": self.dialect.name,
            "schema": _shown(self.schema_source) or None,
            "test_file": _shown(str(_test_file(self.mapping_path))),
        }

    def compile(self, text: str) -> Compiled:
        """``text`` compiled and checked as ``run`` does at start-up."""
        filename = str(self.mapping_path)
        try:
            with lookups.relative_to(self.mapping_path.parent):
                options = mapping_options(self.settings)
                mapper = compile_text(text, self.dialect, filename=filename, **options)
        except ConfigError as exc:
            return Compiled(None, split_problems(str(exc), filename))
        report = record_paths.check_record_paths(
            self.settings, mapper, self._registry, raise_errors=False
        )
        problems = [p for error in report.errors for p in split_problems("\n" + error, filename)]
        return Compiled(mapper if not problems else None, problems, report.warnings)

    def preview(self, text: str, records: list[str]) -> dict[str, Any]:
        """Problems of ``text``; per record its outcome; the fields of the event types used."""
        with self._lock:
            compiled = self.compile(text)
            mapper = compiled.mapper
            if mapper is not None:
                self._types_in_use = _types_in_use(mapper)
            return {
                "problems": compiled.problems,
                "warnings": [
                    _warning(w, str(self.mapping_path))
                    for w in dict.fromkeys(self.schema_warnings + compiled.warnings)
                ],
                "results": [self._outcome(mapper, record) for record in records]
                if mapper is not None
                else [],
                "fields": self._fields(),
            }

    def _fields(self) -> list[dict[str, Any]]:
        reference = []
        for name in self._types_in_use:
            rows = field_reference.event_rows(self.dialect.models[name])
            reference.append(
                {
                    "type": name,
                    "fields": [
                        {
                            "path": r.path,
                            "required": r.required,
                            "type": r.type,
                            "allowed": r.allowed,
                        }
                        for r in rows
                    ],
                }
            )
        return reference

    def _decode(self, record_text: str) -> dict[str, Any]:
        """The record as ``run`` would hand it to the mapper; DecodeError when it cannot be."""
        try:
            record = json.loads(record_text)
        except json.JSONDecodeError as exc:
            raise DecodeError(f"not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError(f"expected a JSON object, got {type(record).__name__}")
        unreadable = record.get("-studio")
        if unreadable is not None:  # a topic record its decoder refused (studio_sample)
            raise DecodeError(str(unreadable))
        if self.schema is None:
            return record
        return as_decoded(record, self.schema, self._decoder)

    def map(self, mapper: Mapper, record_text: str) -> MapResult:
        """The record mapped; DecodeError or MappingError (its dead-letter reason)."""
        return mapper.map(self._decode(record_text), self.topic)

    def _outcome(self, mapper: Mapper, record_text: str) -> dict[str, Any]:
        try:
            result = self.map(mapper, record_text)
        except DecodeError as exc:
            return {"dead_letter": f"decode: {exc}"}
        except MappingError as exc:
            return {"dead_letter": f"map: {exc}"}
        if not result.events:
            return {"skipped_by": result.skipped_by}
        return {
            "rule": result.events[0].rule,
            "events": [
                {"type": e.event_type, "guest_key": e.guest_key, "body": e.body.decode("utf-8")}
                for e in result.events
            ],
        }

    def save_mapping(self, text: str, loaded_digest: str) -> str:
        """Write ``text`` to the mapping file; its new digest. Conflict if it changed on disk."""
        try:
            current = self.mapping_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""  # removed since loaded: a change on disk like any other
        if digest(current) != loaded_digest:
            raise Conflict(
                f"{self.mapping_path} changed on disk since it was loaded; not overwritten "
                "(reload the page to see it, then apply your edits again)"
            )
        self.mapping_path.write_text(text, encoding="utf-8")
        return digest(text)

    def save_test_case(self, text: str, record_text: str, name: str) -> dict[str, Any]:
        """Append ``record_text`` and its outcome under ``text``'s rules to the test file."""
        compiled = self.compile(text)
        if compiled.mapper is None:
            raise ConfigError("the mapping has problems: fix them before saving a test case")
        record = json.loads(record_text)
        try:
            result = self.map(compiled.mapper, record_text)
            expect: dict[str, Any] = (
                {"events": [json.loads(e.body) for e in result.events]}
                if result.events
                else {"skipped": result.skipped_by}
            )
        except DecodeError as exc:
            raise ConfigError(f"the record cannot be decoded: {exc}") from exc
        except MappingError as exc:
            found = re.search(r"field '([^']+)'", str(exc))
            if found is None:
                raise ConfigError(f"a test case cannot name this failure: {exc}") from exc
            expect = {"failed": found[1]}
        case = {"name": name, "record": record, "expect": expect}
        path = _test_file(self.mapping_path)
        _append_case(path, self._test_header(path), case)
        answer: dict[str, Any] = {"test_file": _shown(str(path)), "expect": expect}
        if text != self.mapping_path.read_text(encoding="utf-8"):
            answer["note"] = "the mapping has unsaved changes: the test runs the file on disk"
        return answer

    def _test_header(self, path: Path) -> dict[str, Any]:
        """The top of a new test file: the mapping, dialect, schema (if a file) and topic."""
        header: dict[str, Any] = {"mapping": self.mapping_path.name}
        header["dialect"] = self.dialect.name
        schema_file = _schema_file(self.settings, self.topic)
        if schema_file is not None:
            header["schema"] = _relative(schema_file, path.parent)
        header["topic"] = self.topic
        return header


def _warning(text: str, filename: str) -> dict[str, Any]:
    """A warning as ``{line, message}``: its line in the mapping, if it names one."""
    found = re.search(rf"{re.escape(filename)}:(\d+): ", text)
    if found is None:
        return {"line": None, "message": _shown(text)}
    return {"line": int(found[1]), "message": text[: found.start()] + text[found.end() :]}


def _shown(text: str) -> str:
    """Paths under the working directory as relative ones: shorter on the page."""
    return text.replace(f"{Path.cwd()}{os.sep}", "")


def _types_in_use(mapper: Mapper) -> list[str]:
    names: list[str] = []
    for rule in mapper.rules:
        for event in rule.events:
            name = event.event_type if event.type_of is None else _CUSTOM
            if name is not None and name not in mapper.dialect.models:
                name = _CUSTOM
            if name is not None and name not in names:
                names.append(name)
    return names


def _schema_file(settings: Settings, topic: str) -> Path | None:
    """The local schema file the topic's records are decoded with, if there is one."""
    try:
        spec = settings.topic_for(topic)
    except KeyError:
        return None
    if spec.reader_schema is not None:
        return Path(spec.reader_schema)
    if spec.decoder == "schemaless" and spec.schema_path is not None:
        return Path(spec.schema_path)
    return None


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return os.path.relpath(path.resolve(), folder.resolve())


def _append_case(path: Path, header: dict[str, Any], case: dict[str, Any]) -> None:
    """Add ``case`` at the end of the file's ``tests:`` list (a new file gets ``header``).

    The case is appended as text so the file's comments stay; the result is parsed
    again and written only if it reads as the old cases plus the new one.
    """
    block = yaml.safe_dump([case], sort_keys=False, allow_unicode=True, width=100)
    if not path.exists():
        text = yaml.safe_dump(header, sort_keys=False) + "tests:\n" + block
        path.write_text(text, encoding="utf-8")
        return
    old_text = path.read_text(encoding="utf-8")
    old = yaml.safe_load(old_text)
    tests = old.get("tests") if isinstance(old, dict) else None
    if not isinstance(tests, list):
        raise ConfigError(f"{path}: expected a tests: list to add the case to")
    indent = re.search(r"^tests:\s*\n( *)-", old_text, re.MULTILINE)
    pad = indent[1] if indent else ""
    new_text = old_text + ("" if old_text.endswith("\n") else "\n")
    new_text += "".join(pad + line + "\n" for line in block.splitlines())
    if yaml.safe_load(new_text) != {**old, "tests": [*tests, case]}:
        raise ConfigError(f"{path}: tests: is not the file's last block list; add the case by hand")
    path.write_text(new_text, encoding="utf-8")


def _test_file(mapping: Path) -> Path:
    """Where the mapping's test cases are saved: its test file (``cdp-connector test``
    finds the same one), or ``<mapping>.test.yaml`` beside it when it has none yet."""
    try:
        return tests_beside(mapping)
    except ConfigError:
        return mapping.with_name(mapping.stem + ".test.yaml")
