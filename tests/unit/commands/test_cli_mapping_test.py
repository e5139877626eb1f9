"""``cdp-connector test``: cases, diffs on failure, exit codes; the shipped ones pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fastavro
import pytest

from connector.cli import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "config" / "mappings.example.yaml",
        ROOT / "config" / "mappings.sitecore.yaml",
        EXAMPLES / "shoes.mapping.yaml",
        EXAMPLES / "divolte.mapping.yaml",  # its tests are in divolte-cases.yaml
    ],
    ids=lambda p: p.name,
)
def test_the_shipped_mappings_pass_their_tests(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["test", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out and "FAIL" not in out


def _copy_shoes(tmp_path: Path) -> Path:
    for name in ("shoes.mapping.yaml", "shoe-prices.csv", "shoe-clickstream.avsc"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "shoes.mapping.test.yaml"


def _write(path: Path, text: str) -> Path:
    path.write_text(
        "mapping: shoes.mapping.yaml\nschema: shoe-clickstream.avsc\ntests:\n" + text,
        encoding="utf-8",
    )
    return path


RECORD = (
    "{view_id: v1, user_id: u-77, session: null, product_id: SH-RUN-01, page_url: /p/1, "
    "view_time: 41, ts: 1764661530123, device: PHONE, cart: null}"
)


def test_a_differing_event_prints_a_diff_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        _copy_shoes(tmp_path),
        f"""\
  - name: view
    record: {RECORD}
    expect:
      events:
        - {{channel: WEB, type: VIEW, browser_id: u-77, session_id: v1, pos: shoes.example,
           currency: EUR, page: "https://shoes.example/p/1",
           ext: {{productId: SH-RUN-01, seconds: 41}}}}
""",
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  view" in out
    assert '-    "channel": "WEB",' in out and '+    "channel": "MOBILE_WEB",' in out
    assert "1 test, 1 failed" in out


def test_skipped_and_failed_expectations_say_what_happened_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        _copy_shoes(tmp_path),
        f"""\
  - name: skipped
    record: {RECORD}
    expect: {{skipped: page-view}}
  - name: failed
    record: {RECORD}
    expect: {{failed: page}}
""",
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "expected: skipped by 'page-view'" in out
    assert "got:      1 event(s) by rule 'product-view'" in out
    assert "expected: failed naming field 'page'" in out
    assert "2 tests, 2 failed" in out


def test_a_record_can_come_from_an_avro_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test_file = _copy_shoes(tmp_path)
    schema = fastavro.parse_schema(json.loads((EXAMPLES / "shoe-clickstream.avsc").read_text()))
    record = {
        "view_id": "v1",
        "user_id": "u-1",
        "session": None,
        "product_id": None,
        "page_url": "/",
        "view_time": 1,
        "ts": 1,
        "device": "DESKTOP",
        "cart": None,
    }
    with (tmp_path / "views.avro").open("wb") as handle:
        fastavro.writer(handle, schema, [record, {**record, "product_id": "SH-RUN-01"}])
    _write(
        test_file,
        "  - {name: second record, avro: views.avro, index: 1, expect: {skipped: nothing}}\n",
    )
    assert main(["test", str(test_file)]) == 1
    assert "got:      1 event(s) by rule 'product-view'" in capsys.readouterr().out


def test_an_invalid_test_file_is_exit_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        _copy_shoes(tmp_path),
        f"  - name: x\n    recrod: {RECORD}\n    expect: {{skipped: y}}\n",
    )
    assert main(["test", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: unknown key 'recrod' (did you mean 'record'?)" in err


def test_a_path_typo_in_the_mapping_fails_the_tests_against_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        _copy_shoes(tmp_path), f"  - {{name: x, record: {RECORD}, expect: {{skipped: y}}}}\n"
    )
    mapping = tmp_path / "shoes.mapping.yaml"
    mapping.write_text(mapping.read_text().replace("seconds: view_time", "seconds: veiw_time"))
    assert main(["test", str(path)]) == 2
    assert "no field 'veiw_time' (did you mean 'view_time'?)" in capsys.readouterr().err
