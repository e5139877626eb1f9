"""``cdp-connector map``: the dry run prints rules and bodies, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest

from connector.cli import main
from connector.mapping.json_values import json_safe
from tests.unit.mapping_records import RECORDS

EXAMPLE = str(Path(__file__).resolve().parents[3] / "config" / "mappings.example.yaml")
DIALECT = "tests.unit.mapping_dialect:flat_dialect"
AVRO = Path(__file__).resolve().parents[3] / "avro"


def _jsonl(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _records_as_json() -> list[str]:
    return [json.dumps(json_safe(r)) for r in RECORDS.values()]


def test_dry_run_prints_rule_and_bodies_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = dict(RECORDS["PAGE_VIEW"], user_agent="Googlebot/2.1")
    lines = [*_records_as_json(), json.dumps(json_safe(bot))]
    code = main(
        ["map", "--mapping", EXAMPLE, "--input", _jsonl(tmp_path, lines), "--dialect", DIALECT]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "line 1: rule 'page-view' → 1 event" in out
    assert '"type":"ORDER_CHECKOUT"' in out and '"ordered_at":"2026-11-02T08:15:30.123Z"' in out
    assert "line 7: skipped (rule 'bots')" in out
    assert "7 records: 6 mapped (6 events), 1 skipped, 0 failed" in out


def test_dry_run_exits_1_when_a_record_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = json.loads(_records_as_json()[1])
    del broken["payload"]["sku"]
    lines = [json.dumps(broken), "{not json"]
    args = ["map", "--mapping", EXAMPLE, "--input", _jsonl(tmp_path, lines), "--dialect", DIALECT]
    assert main([*args, "--output", "jsonl"]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {
        "record": "line 1",
        "error": "rule 'add-to-cart', ADD: field 'product.sku': required, but payload.sku is "
        "missing or null",
    }
    assert second["error"].startswith("not valid JSON")


def test_dry_run_exits_2_on_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    emit: {type: VEIW}\n", encoding="utf-8")
    code = main(
        ["map", "--mapping", str(bad), "--input", _jsonl(tmp_path, []), "--dialect", DIALECT]
    )
    assert code == 2
    assert f"{bad}:3: rule 'x': unknown event type 'VEIW'" in capsys.readouterr().err


def test_dry_run_reads_avro_container_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real clickstream schema: `map` also checks the rules' paths against the file's.
    schema = fastavro.parse_schema(json.loads((AVRO / "clickstream-v2.avsc").read_text()))
    rec = dict(RECORDS["SEARCH"], payload={"query": "socks", "result_count": 3})
    path = tmp_path / "records.avro"
    with path.open("wb") as handle:
        fastavro.writer(handle, schema, [rec])
    assert main(["map", "--mapping", EXAMPLE, "--input", str(path), "--dialect", DIALECT]) == 0
    out = capsys.readouterr().out
    assert "record 1: rule 'search' → 1 event" in out and '"search_term":"socks"' in out


def test_dry_run_takes_mapping_dialect_and_topic_from_the_connector_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path(EXAMPLE).with_name("connector.yaml")
    code = main(["map", "--config", str(config), "--input", _jsonl(tmp_path, _records_as_json())])
    out = capsys.readouterr().out
    assert code == 0
    assert "dialect asyncapi, topic clickstream" in out
    assert "6 records: 6 mapped (6 events), 0 skipped, 0 failed" in out


def test_dry_run_needs_a_config_or_a_mapping(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["map", "--input", "x.jsonl"])
    assert info.value.code == 2
    assert "one of the arguments --config --mapping is required" in capsys.readouterr().err
