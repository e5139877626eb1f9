"""``cdp-connector map`` against a schema: paths checked, logical types decoded as in run."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest

from connector.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
SCHEMA = EXAMPLES / "shoe-clickstream.avsc"
MAPPING = EXAMPLES / "shoes.mapping.yaml"
RECORD = {
    "view_id": "v1",
    "user_id": "u-77",
    "session": None,
    "product_id": "SH-RUN-01",
    "page_url": "/p/1",
    "view_time": 41,
    "ts": 1764661530123,
    "device": "PHONE",
    "cart": {"order_id": 5001, "lines": [{"product_id": "SH-RUN-01", "size": 42, "quantity": 1}]},
}


def _typo_mapping(tmp_path: Path) -> Path:
    text = MAPPING.read_text().replace("ordered_at: ts ", "ordered_at: tss")
    path = tmp_path / "shoes.yaml"
    path.write_text(text)
    (tmp_path / "shoe-prices.csv").write_text((EXAMPLES / "shoe-prices.csv").read_text())
    return path


def test_json_lines_with_a_schema_decode_logical_types_as_the_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps(RECORD) + "\n")
    args = ["map", "--mapping", str(MAPPING), "--input", str(records), "--output", "jsonl"]
    assert main([*args, "--schema", str(SCHEMA)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    [event] = json.loads(line)["events"]
    assert event["body"]["ordered_at"] == "2025-12-02T07:45:30.123000Z"


def test_json_lines_that_do_not_fit_the_schema_fail_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({**RECORD, "view_time": "long"}) + "\n")
    code = main(
        ["map", "--mapping", str(MAPPING), "--input", str(records), "--schema", str(SCHEMA)]
    )
    assert code == 1
    assert "line 1: FAILED: does not fit the schema" in capsys.readouterr().out


def test_a_path_typo_is_refused_against_the_schema_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps(RECORD) + "\n")
    mapping = _typo_mapping(tmp_path)
    code = main(
        ["map", "--mapping", str(mapping), "--input", str(records), "--schema", str(SCHEMA)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"{mapping}:23: rule 'order', ORDER_CHECKOUT, field 'ordered_at': " in err
    assert "ShoeClick has no field 'tss' (did you mean 'ts'?)" in err


def test_a_path_typo_is_refused_against_an_avro_files_own_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    avro = tmp_path / "r.avro"
    with avro.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(json.loads(SCHEMA.read_text())), [RECORD])
    code = main(["map", "--mapping", str(_typo_mapping(tmp_path)), "--input", str(avro)])
    assert code == 2
    assert "(did you mean 'ts'?)" in capsys.readouterr().err


def test_map_with_a_config_checks_paths_against_the_topics_local_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = _typo_mapping(tmp_path)
    (tmp_path / "shoe-clickstream.avsc").write_text(SCHEMA.read_text())
    config = tmp_path / "connector.yaml"
    config.write_text(
        "topics: [{name: shoes, decoder: schemaless, schema: shoe-clickstream.avsc}]\n"
        f"mapping: {mapping.name}\n"
    )
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps(RECORD) + "\n")
    assert main(["map", "--config", str(config), "--input", str(records)]) == 2
    assert "ShoeClick has no field 'tss' (did you mean 'ts'?)" in capsys.readouterr().err
