"""The first day's mistakes of issue 27, each run through the CLI as a user would.

The Divolte rows of docs/mapping.md's mistake table are in ``test_mistakes.py``; these
are the rest: the issue's own examples on the shoe example and the asyncapi dialect,
and the commands the table does not run (``run``, ``check``, ``test`` without a schema).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from connector.cli import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
SHOE = {
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


@pytest.fixture
def shoes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shoe example copied into a folder the test runs in."""
    for name in ("shoes.mapping.yaml", "shoe-prices.csv", "shoe-clickstream.avsc"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "shoes.jsonl").write_text(json.dumps(SHOE) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


MAP = ("map", "--mapping", "shoes.mapping.yaml", "--input", "shoes.jsonl")


def test_a_constant_of_the_wrong_type_is_refused_before_the_first_record(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(shoes / "shoes.mapping.yaml", "quantity: quantity", 'quantity: {const: "one"}')
    code, said = _run(capsys, *MAP)
    assert code == 2
    assert (
        "shoes.mapping.yaml:29: rule 'order', ORDER_CHECKOUT, field 'items[].quantity': 'one': "
        "expected an integer\n"
    ) in said


def test_a_text_constant_that_a_transform_would_fix_names_the_transform(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(shoes / "shoes.mapping.yaml", "quantity: quantity", 'quantity: {const: "1"}')
    code, said = _run(capsys, *MAP)
    assert code == 2
    assert "field 'items[].quantity': '1': expected an integer — or add transform: integer" in said


def test_a_constant_outside_an_enum_is_refused(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        shoes / "shoes.mapping.yaml",
        "ordered_at: ts                       # timestamp-millis: an ISO date-time",
        "ordered_at: ts\n        status: {const: SHIPPED}",
    )
    code, said = _run(capsys, *MAP)
    assert code == 2
    assert (
        "shoes.mapping.yaml:24: rule 'order', ORDER_CHECKOUT, field 'status': 'SHIPPED' is not "
        "one of: CANCELED, CONFIRMED, PENDING"
    ) in said


def test_lookup_values_of_the_wrong_type_are_refused(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        shoes / "shoes.mapping.yaml",
        "quantity: quantity",
        "quantity: {path: size, transform: {lookup: {table: {42: two}, default: 1}}}",
    )
    code, said = _run(capsys, *MAP)
    assert code == 2
    assert "field 'items[].quantity': lookup value 'two': expected an integer" in said


def test_the_issues_misplaced_ext_attribute_gets_a_hint(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        shoes / "shoes.mapping.yaml",
        "        ext: {productId: product_id, seconds: view_time}",
        "        productId: product_id\n        ext: {seconds: view_time}",
    )
    code, said = _run(capsys, *MAP)
    assert code == 2
    assert (
        "shoes.mapping.yaml:36: rule 'product-view', VIEW, field 'productId': ViewEvent has no "
        "field 'productId' (an ext attribute? put it under ext:)"
    ) in said


def test_a_field_of_a_nested_object_written_one_level_up_says_where_it_belongs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        (ROOT / "config" / "mappings.sitecore.yaml")
        .read_text()
        .replace(
            "          order:\n", "          referenceId: payload.order_id\n          order:\n"
        )
    )
    records = tmp_path / "r.jsonl"
    records.write_text("")
    code, said = _run(capsys, "map", "--mapping", str(mapping), "--input", str(records))
    assert code == 2
    assert (
        "field 'referenceId': OrderCheckoutEvent has no field 'referenceId' (a field of order: "
        "put it under order:)"
    ) in said


def test_map_config_decodes_json_lines_with_the_topics_own_schema(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (shoes / "connector.yaml").write_text(
        "topics: [{name: shoes, decoder: schemaless, schema: shoe-clickstream.avsc}]\n"
        "mapping: shoes.mapping.yaml\n"
        "cdp: {base_url: 'http://127.0.0.1:9', region: null}\n"
    )
    code, said = _run(
        capsys, "map", "--config", "connector.yaml", "--input", "shoes.jsonl", "--output", "jsonl"
    )
    assert code == 0, said
    [line] = [json.loads(x) for x in said.splitlines() if x.startswith("{")]
    [event] = line["events"]
    assert event["body"]["ordered_at"] == "2025-12-02T07:45:30.123000Z"  # timestamp-millis


def test_test_without_a_schema_names_a_path_no_record_has(
    shoes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(shoes / "shoes.mapping.yaml", '{template: "https://shoes.example{page_url}"}', "page_ulr")
    (shoes / "cases.yaml").write_text(
        "mapping: shoes.mapping.yaml\n"
        "tests:\n"
        f"  - {{name: a view, record: {json.dumps({**SHOE, 'cart': None})}, "
        "expect: {skipped: nothing}}\n"
    )
    code, said = _run(capsys, "test", "cases.yaml")
    assert code == 1  # the case itself fails: a view is no skip
    assert (
        "warning: shoes.mapping.yaml:15: field 'page': path 'page_ulr': the input has no field "
        "'page_ulr' (did you mean 'page_url'?)"
    ) in said
    assert "note: record paths checked against the 1 input record only" in said


def test_test_takes_the_points_of_sale_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("divolte-DefaultEventRecord.avsc", "divolte.mapping.yaml", "divolte-cases.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    cases = tmp_path / "divolte-cases.yaml"
    _edit(cases, "points_of_sale: [shop.example.com, shop.example.de]\n", "")
    monkeypatch.chdir(tmp_path)
    code, said = _run(capsys, "test", "divolte-cases.yaml")
    assert code == 1  # the dead-letter case fails: nothing was checked
    assert "note: pos not checked against the tenant's points of sale" in said
    code, said = _run(capsys, "test", "divolte-cases.yaml", "--points-of-sale", "shop.example.com")
    assert code == 0, said
    assert "pos not checked" not in said


def test_a_test_files_dialect_that_is_not_the_mappings_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("divolte-DefaultEventRecord.avsc", "divolte.mapping.yaml", "divolte-cases.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    _edit(tmp_path / "divolte-cases.yaml", "mapping: divolte.mapping.yaml\n",
          "mapping: divolte.mapping.yaml\ndialect: asyncapi\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, said = _run(capsys, "test", "divolte-cases.yaml")
    assert code == 2
    assert said.strip().splitlines()[-1] == (
        "cdp-connector: configuration error: divolte.mapping.yaml:10: the mapping is written "
        "for the sitecore dialect (dialect: sitecore), but divolte-cases.yaml's dialect: is "
        "asyncapi: make the two agree"
    )


def _divolte_config(tmp_path: Path, pos: str) -> Path:
    for name in ("divolte-DefaultEventRecord.avsc", "divolte.mapping.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    _edit(
        tmp_path / "divolte.mapping.yaml",
        'pos: {path: location, transform: {split: {separator: "/", index: 2}}}',
        f"pos: {{const: {pos}}}",
    )
    config = tmp_path / "connector.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:9'}\n"
        "topics: [{name: clicks, decoder: schemaless, schema: divolte-DefaultEventRecord.avsc}]\n"
        "mapping: divolte.mapping.yaml\n"
        "cdp: {dialect: sitecore, base_url: 'http://127.0.0.1:9', region: null,\n"
        "      points_of_sale: [shop.example.com]}\n"
    )
    return config


def test_run_refuses_a_constant_point_of_sale_the_tenant_does_not_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import connector.logs

    monkeypatch.setattr(connector.logs, "setup_logging", lambda *args: None)
    config = _divolte_config(tmp_path, "shop.example.co")
    code, said = _run(capsys, "run", "--config", str(config))
    assert code == 2
    assert (
        "divolte.mapping.yaml:17: field 'pos': 'shop.example.co' is not in cdp.points_of_sale "
        "(shop.example.com) (did you mean 'shop.example.com'?)"
    ) in said


def test_check_exits_2_for_a_mapping_run_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _divolte_config(tmp_path, "shop.example.co")
    code, said = _run(capsys, "check", "--config", str(config), "--timeout", "1")
    assert code == 2
    assert "'shop.example.co' is not in cdp.points_of_sale" in said
    mapping_row = next(line for line in said.splitlines() if line.startswith("mapping "))
    assert "FAIL" in mapping_row
