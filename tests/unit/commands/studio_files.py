"""A studio workspace in a folder: connector.yaml, the example mapping, its schema, records.

Shared by the studio's unit tests and its browser tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "avro" / "clickstream-v2.avsc"
EXAMPLE = ROOT / "config" / "mappings.example.yaml"
EXAMPLE_TESTS = ROOT / "config" / "mappings.example.test.yaml"

# The path the typo tests break: defaults.fields.session_id reads record path session_id.
GOOD_LINE = "    session_id: session_id"
TYPO_LINE = "    session_id: sesion_id"


def example_records() -> list[dict[str, object]]:
    """The records of the example mapping's own test cases (a page view, an add to cart...)."""
    cases = yaml.safe_load(EXAMPLE_TESTS.read_text(encoding="utf-8"))["tests"]
    return [case["record"] for case in cases if "record" in case][:3]


def workspace(folder: Path) -> tuple[Path, Path, Path]:
    """``(config, mapping, records)`` written in ``folder``."""
    mapping = folder / "mappings.yaml"
    shutil.copy(EXAMPLE, mapping)
    assert GOOD_LINE + "\n" in mapping.read_text(encoding="utf-8")
    config = folder / "connector.yaml"
    config.write_text(
        f"topics: [{{name: clickstream, decoder: schemaless, schema: {SCHEMA}}}]\n"
        "mapping: mappings.yaml\n",
        encoding="utf-8",
    )
    records = folder / "records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in example_records()), encoding="utf-8")
    return config, mapping, records


def line_of(text: str, wanted: str) -> int:
    """The 1-based number of the line ``wanted`` in ``text``."""
    return text.splitlines().index(wanted) + 1
