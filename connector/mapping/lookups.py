"""Lookup tables kept in files beside the mapping: ``{lookup: {file: prices.csv}}``.

A table file is read once per compilation (at start-up, never per record), with
its path relative to the mapping file, and any problem with it is a compile
problem on the line that names it. Formats, by extension:

- ``.csv``: a header row, then one ``key,value`` pair per row (first two
  columns; values are text — chain ``number`` or ``integer`` for numbers).
- ``.json``, ``.yaml`` / ``.yml``: one object / mapping of key → value (values
  keep their JSON/YAML types).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml

from connector.errors import InternalError

__all__ = ["LookupFileError", "load_table", "relative_to"]


class LookupFileError(InternalError, ValueError):
    """A lookup file is missing or not a table; the message names the file."""


_base: ContextVar[tuple[Path, dict[Path, dict[Any, Any]]] | None] = ContextVar(
    "lookup_base", default=None
)


@contextmanager
def relative_to(folder: Path) -> Iterator[None]:
    """Lookup files named inside the block are relative to ``folder`` and read once each."""
    token = _base.set((folder, {}))
    try:
        yield
    finally:
        _base.reset(token)


def load_table(name: Any) -> dict[Any, Any]:
    """The table in file ``name`` (relative to the mapping file's folder)."""
    if not isinstance(name, str) or not name:
        raise LookupFileError("lookup file must be a file name (prices.csv, sizes.yaml)")
    base = _base.get()
    folder, cache = base if base is not None else (Path.cwd(), {})
    path = (folder / name).resolve()
    if path in cache:
        return cache[path]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LookupFileError(f"lookup file {path}: {exc.strerror or exc}") from exc
    table = _parse(text, path)
    if not table:
        raise LookupFileError(f"lookup file {path} has no entries")
    cache[path] = table
    return table


def _parse(text: str, path: Path) -> dict[Any, Any]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        table: dict[Any, Any] = {}
        for number, row in enumerate(rows[1:], start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < 2:
                raise LookupFileError(f"lookup file {path}:{number}: expected key,value")
            table[row[0]] = row[1]
        return table
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise LookupFileError(f"lookup file {path}: not valid {suffix[1:]}: {exc}") from exc
    if suffix not in (".json", ".yaml", ".yml"):
        raise LookupFileError(f"lookup file {path}: use .csv, .json, .yaml or .yml")
    if not isinstance(data, dict):
        raise LookupFileError(f"lookup file {path}: expected an object of key: value")
    return data
