"""Start-up path checks against the config's writer schemas, and the runtime re-check."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from connector.cdp.dialect import get_dialect
from connector.config import Settings, load_config
from connector.errors import ConfigError
from connector.mapping import Mapper, compile_mapping
from connector.settle.record_paths import SchemaWatch, check_record_paths
from tests.unit.registry_stub import stub_registry

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
SHOES = json.loads((EXAMPLES / "shoe-clickstream.avsc").read_text())


def _setup(tmp_path: Path, topics: str, *, typo: str = "", registry: str = "") -> Settings:
    for name in ("shoes.mapping.yaml", "shoe-prices.csv", "shoe-clickstream.avsc"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    if typo:
        mapping = tmp_path / "shoes.mapping.yaml"
        mapping.write_text(mapping.read_text().replace(*typo.split(">")))
    config = tmp_path / "connector.yaml"
    config.write_text(
        f"topics: {topics}\nmapping: shoes.mapping.yaml\n"
        + (f"schema_registry: {{url: '{registry}'}}\n" if registry else "")
    )
    return load_config(config)


def _mapper(settings: Settings) -> Mapper:
    return compile_mapping(settings.mapping, get_dialect(settings.cdp.dialect))


LOCAL = "[{name: shoes, decoder: schemaless, schema: shoe-clickstream.avsc}]"


def test_a_schemaless_topic_is_checked_against_its_local_schema(tmp_path: Path) -> None:
    settings = _setup(tmp_path, LOCAL, typo="seconds: view_time>seconds: veiw_time")
    with pytest.raises(ConfigError) as info:
        check_record_paths(settings, _mapper(settings))
    message = str(info.value)
    assert message.startswith("1 problem with the mapping's record paths and topics:")
    assert f"{settings.mapping}:36: rule 'product-view', VIEW, field 'ext.seconds': " in message
    assert "no field 'veiw_time' (did you mean 'view_time'?)" in message


def test_a_correct_mapping_passes_and_says_what_it_checked(tmp_path: Path) -> None:
    settings = _setup(tmp_path, LOCAL)
    report = check_record_paths(settings, _mapper(settings))
    assert report.errors == [] and report.warnings == []
    assert report.checked == [f"shoes against schema {tmp_path / 'shoe-clickstream.avsc'}"]


def test_a_rule_topic_that_matches_no_configured_topic_is_an_error(tmp_path: Path) -> None:
    settings = _setup(
        tmp_path, LOCAL, typo="  - name: page-view\n>  - name: page-view\n    topics: [shoe]\n"
    )
    with pytest.raises(ConfigError) as info:
        check_record_paths(settings, _mapper(settings))
    assert (
        f"{settings.mapping}:38: rule 'page-view', field 'topics': topic 'shoe' is not a "
        "configured topic (did you mean 'shoes'?) (topics: shoes)"
    ) in str(info.value)


def test_a_topic_pattern_that_matches_no_configured_topic_is_an_error(tmp_path: Path) -> None:
    settings = _setup(
        tmp_path,
        LOCAL,
        typo="  - name: page-view\n>  - name: page-view\n    topic_pattern: 'clicks.*'\n",
    )
    with pytest.raises(ConfigError, match=r"topic_pattern 'clicks\.\*' matches no configured"):
        check_record_paths(settings, _mapper(settings))


def test_a_registry_topic_uses_the_latest_version_of_its_subject(tmp_path: Path) -> None:
    with stub_registry() as stub:
        stub.answers["/subjects/shoes-value/versions/latest"] = (
            200,
            {"id": 4, "version": 2, "schema": json.dumps(SHOES)},
        )
        stub.answers["/subjects/shoes-value/versions"] = (200, [1, 2])
        stub.answers["/subjects/shoes-value/versions/1"] = (
            200,
            {"id": 3, "version": 1, "schema": json.dumps(SHOES)},
        )
        settings = _setup(
            tmp_path, "[{name: shoes}]", typo="when: product_id>when: prodcut_id", registry=stub.url
        )
        report = check_record_paths(settings, _mapper(settings), raise_errors=False)
    assert report.checked == ["shoes against subject shoes-value (schema id 4)"]
    assert report.warnings == []
    [error] = report.errors  # a condition on a field no version has: never true
    assert "field 'when'" in error and "(did you mean 'product_id'?)" in error


def test_a_condition_on_a_field_of_another_version_is_a_warning_naming_it(
    tmp_path: Path,
) -> None:
    newer = {**SHOES, "fields": [*SHOES["fields"], {"name": "prodcut_id", "type": "string"}]}
    with stub_registry() as stub:
        stub.answers["/subjects/shoes-value/versions/latest"] = (
            200,
            {"id": 4, "version": 2, "schema": json.dumps(SHOES)},
        )
        stub.answers["/subjects/shoes-value/versions"] = (200, [1, 2, 3])
        stub.answers["/subjects/shoes-value/versions/3"] = (
            200,
            {"id": 7, "version": 3, "schema": json.dumps(newer)},
        )
        settings = _setup(
            tmp_path, "[{name: shoes}]", typo="when: product_id>when: prodcut_id", registry=stub.url
        )
        report = check_record_paths(settings, _mapper(settings), raise_errors=False)
    assert report.errors == []
    [warning] = report.warnings
    assert warning.endswith(
        "ShoeClick has no field 'prodcut_id' (did you mean 'product_id'?); version 3 of "
        "subject shoes-value (schema id 7) has it: null for records written with this version"
    )


def test_the_subject_setting_names_another_subject(tmp_path: Path) -> None:
    with stub_registry() as stub:
        stub.answers["/subjects/shop.ShoeClick/versions/latest"] = (
            200,
            {"id": 9, "schema": json.dumps(SHOES)},
        )
        settings = _setup(tmp_path, "[{name: shoes, subject: shop.ShoeClick}]", registry=stub.url)
        report = check_record_paths(settings, _mapper(settings))
    assert report.checked == ["shoes against subject shop.ShoeClick (schema id 9)"]


def test_no_subject_yet_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with stub_registry() as stub, caplog.at_level(logging.WARNING, "connector.settle.record_paths"):
        settings = _setup(tmp_path, "[{name: shoes}]", registry=stub.url)
        report = check_record_paths(settings, _mapper(settings))
    [warning] = report.warnings
    assert "subject 'shoes-value' has no schema yet" in warning
    assert "has no schema yet" in caplog.text


def test_a_pattern_topic_without_subject_is_a_warning(tmp_path: Path) -> None:
    settings = _setup(tmp_path, "[{pattern: 'shoes.*'}]", registry="http://127.0.0.1:9/x")
    [warning] = check_record_paths(settings, _mapper(settings)).warnings
    assert "a pattern has no subject" in warning


def test_a_new_writer_schema_at_runtime_is_checked_once_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _setup(tmp_path, LOCAL)
    counted: list[tuple[str, int]] = []
    watch = SchemaWatch(_mapper(settings), lambda topic, n: counted.append((topic, n)))
    evolved: dict[str, Any] = {
        **SHOES,
        "fields": [f for f in SHOES["fields"] if f["name"] != "view_time"],
    }
    hook = watch.for_topic("shoes")
    with caplog.at_level(logging.WARNING, "connector.settle.record_paths"):
        hook(12, evolved)
        hook(12, evolved)  # the same id again: not re-checked
        hook(13, SHOES)
    assert counted == [("shoes", 1)]
    assert "writer schema id 12: mapping path no longer fits" in caplog.text
    assert caplog.text.count("no longer fits") == 1
    assert "no field 'view_time'" in caplog.text


def test_other_versions_of_a_subject_are_read_newest_first_without_the_latest() -> None:
    from connector.decode.registry import RegistryClient

    with stub_registry() as stub:
        stub.answers["/subjects/s/versions"] = (200, [1, 2, 3])
        for number, schema_id in ((1, 10), (2, 11), (3, 12)):
            stub.answers[f"/subjects/s/versions/{number}"] = (
                200,
                {"id": schema_id, "version": number, "schema": json.dumps(SHOES)},
            )
        found = RegistryClient(stub.url).other_versions("s", latest_id=12)
        missing = RegistryClient(stub.url).other_versions("nobody", latest_id=1)
    assert [(number, schema_id) for number, schema_id, _ in found] == [(2, 11), (1, 10)]
    assert missing == []
