"""`cdp-connector check` against the real broker, registry and sandbox: passes and failures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from scripts.services.common import free_port
from tests.integration.connector_proc import ConnectorFactory
from tests.integration.kafka_helpers import create_topic
from tests.integration.ops_helpers import run_cli, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(
    bootstrap: str, unique: str, schema_registry: Any, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> dict[str, Any]:  # fmt: skip
    topic, dlq = f"check-{unique}", f"check-{unique}.dlq"
    create_topic(bootstrap, topic, 2)
    create_topic(bootstrap, dlq, 1)
    config = connector_factory.config(
        kafka={"group_id": f"cdp-{unique}"},
        topics=[{"name": topic, "decoder": "confluent"}],
        schema_registry={"url": schema_registry.url},
        cdp={"base_url": cdp_sandbox.url, "region": None},
        dead_letter={"topic": dlq},
    )
    return {"config": config, "env": connector_factory.env, "topic": topic}


def check(tmp_path: Path, config: dict[str, Any], env: dict[str, str], *extra: str) -> Any:
    path = write_config(tmp_path, config)
    return run_cli("check", "--config", str(path), "--timeout", "3", *extra, env=env)


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """CHECK name → (RESULT, DETAIL) from the printed table."""
    found: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines()[1:]:
        parts = line.split("  ")
        cells = [p.strip() for p in parts if p.strip()]
        if len(cells) >= 4:
            found[cells[0]] = (cells[1], "  ".join(cells[3:]))
    return found


def test_check_passes_when_everything_is_reachable(
    tmp_path: Path, setup: dict[str, Any], cdp_sandbox: Any
) -> None:
    result = check(tmp_path, setup["config"], setup["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert {name for name, (mark, _) in table.items() if mark != "ok"} == set()
    assert set(table) >= {"config", "mapping", "kafka broker", f"topic {setup['topic']}",
                          "schema registry", "cdp credentials"}  # fmt: skip
    assert "HTTP 400" in table["cdp credentials"][1]
    assert cdp_sandbox.events() == []  # the probe created no data
    assert cdp_sandbox.stats()["by_status"] == {"400": 1}


def test_check_fails_on_refused_credentials(tmp_path: Path, setup: dict[str, Any]) -> None:
    env = {**setup["env"], "CDP_API_TOKEN": "wrong-token-Zq81"}
    result = check(tmp_path, setup["config"], env)
    assert result.returncode == 1
    mark, detail = rows(result.stdout)["cdp credentials"]
    assert mark == "FAIL"
    assert "credentials refused (HTTP 401)" in detail
    assert "wrong-token-Zq81" not in result.stdout + result.stderr


def test_check_fails_on_unknown_topic_and_unreachable_registry(
    tmp_path: Path, setup: dict[str, Any]
) -> None:
    config = {
        **setup["config"],
        "topics": [{"name": "no-such-topic-xyz", "decoder": "confluent"}],
        "schema_registry": {"url": f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"},
    }
    result = check(tmp_path, config, setup["env"])
    assert result.returncode == 1
    table = rows(result.stdout)
    assert table["topic no-such-topic-xyz"] == ("FAIL", "topic 'no-such-topic-xyz' does not exist")
    assert table["schema registry"][0] == "FAIL"
    assert "unreachable" in table["schema registry"][1]
    assert table["kafka broker"][0] == "ok"
    assert table["cdp credentials"][0] == "ok"


def test_check_fails_within_its_timeout_when_the_broker_is_unreachable(
    tmp_path: Path, setup: dict[str, Any]
) -> None:
    config = {**setup["config"], "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}"}}
    started = time.monotonic()
    result = check(tmp_path, config, setup["env"])
    assert result.returncode == 1
    assert time.monotonic() - started < 20  # 3 s per check, all at once, plus start-up
    table = rows(result.stdout)
    assert table["kafka broker"][0] == "FAIL"
    assert "no metadata" in table["kafka broker"][1]
    assert table[f"topic {setup['topic']}"][0] == "FAIL"
    assert "%3|" not in result.stderr  # librdkafka's connection chatter is not printed


def test_check_reports_an_invalid_config_and_exits_2(tmp_path: Path, setup: dict[str, Any]) -> None:
    result = check(tmp_path, {**setup["config"], "delivery": {"ordering": "sideways"}}, {})
    assert result.returncode == 2
    mark, detail = rows(result.stdout)["config"]
    assert mark == "FAIL"
    assert "1 problem" in detail
    assert "delivery.ordering" in result.stdout


def test_check_probes_each_point_of_sale_and_fails_an_unknown_one(
    tmp_path: Path, setup: dict[str, Any], cdp_sitecore_sandbox: Any
) -> None:
    config = setup["config"]
    config["cdp"] = {
        "base_url": cdp_sitecore_sandbox.url,
        "region": None,
        "dialect": "sitecore",
        "points_of_sale": ["shop.example.com", "nowhere.example.org"],
    }
    config["mapping"] = str(Path(__file__).resolve().parents[2] / "config/mappings.sitecore.yaml")
    env = {
        "CDP_CLIENT_KEY": cdp_sitecore_sandbox.client_key,
        "CDP_API_TOKEN": cdp_sitecore_sandbox.api_token,
    }
    result = check(tmp_path, config, env)

    assert result.returncode == 1, result.stdout + result.stderr
    table = rows(result.stdout)
    mark, detail = table["point of sale shop.example.com"]
    assert mark == "ok"
    assert "created one anonymous guest" in detail
    mark, detail = table["point of sale nowhere.example.org"]
    assert mark != "ok"
    assert "dropped" in detail
    assert "created one anonymous guest" in detail
    assert cdp_sitecore_sandbox.stats()["dropped"] >= 1


def _register(registry_url: str, subject: str, schema_file: str) -> None:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    text = (Path(__file__).resolve().parents[2] / "avro" / schema_file).read_text()
    with SchemaRegistryClient({"url": registry_url}) as client:
        client.register_schema(subject, Schema(text, "AVRO"))


def test_check_holds_record_paths_against_the_subjects_latest_schema(
    tmp_path: Path, setup: dict[str, Any], schema_registry: Any
) -> None:
    _register(schema_registry.url, f"{setup['topic']}-value", "clickstream-v2.avsc")
    example = Path(__file__).resolve().parents[2] / "config" / "mappings.example.yaml"
    mapping = tmp_path / "typo.yaml"
    mapping.write_text(
        example.read_text().replace("search_term: payload.query", "search_term: payload.qurey")
    )
    result = check(tmp_path, {**setup["config"], "mapping": str(mapping)}, setup["env"])
    assert result.returncode == 2, result.stdout
    mark, _ = rows(result.stdout)["record paths"]
    assert mark == "FAIL"
    assert f"{mapping}:67: rule 'search', SEARCH, field 'search_term': " in result.stdout
    assert "(did you mean 'payload.query'?)" in result.stdout
    ok = check(tmp_path, setup["config"], setup["env"])
    mark, detail = rows(ok.stdout)["record paths"]
    assert mark == "ok", ok.stdout
    assert f"checked {setup['topic']} against subject {setup['topic']}-value" in detail


def test_check_fails_a_rule_topic_that_is_not_configured(
    tmp_path: Path, setup: dict[str, Any]
) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "mappings.example.yaml"
    mapping = tmp_path / "topics.yaml"
    mapping.write_text(example.read_text().replace(
        "  - name: search\n", "  - name: search\n    topics: [clickstraem]\n"
    ))  # fmt: skip
    result = check(tmp_path, {**setup["config"], "mapping": str(mapping)}, setup["env"])
    assert result.returncode == 2  # run would refuse it at start-up
    assert rows(result.stdout)["record paths"][0] == "FAIL"
    assert "rule 'search', field 'topics': topic 'clickstraem' is not a configured topic" in (
        result.stdout
    )
