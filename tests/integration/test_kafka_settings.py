"""Kafka settings at start, against the real broker: each client gets only its own keys,
and `run` makes sure of the dead-letter topic before it consumes anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.connector_proc import ConnectorFactory, wait_for
from tests.integration.kafka_helpers import create_topic
from tests.integration.ops_helpers import run_cli, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def config(
    bootstrap: str, unique: str, schema_registry: Any, cdp_sandbox: Any,
    connector_factory: ConnectorFactory,
) -> dict[str, Any]:  # fmt: skip
    """A run config for a fresh topic whose dead-letter topic does not exist yet."""
    topic = f"settings-{unique}"
    create_topic(bootstrap, topic, 2)
    return connector_factory.config(
        kafka={"group_id": f"cdp-{unique}"},
        topics=[{"name": topic, "decoder": "confluent"}],
        schema_registry={"url": schema_registry.url},
        cdp={"base_url": cdp_sandbox.url, "region": None},
        dead_letter={"topic": f"{topic}.dlq"},
    )


def topics(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics)


def test_run_prints_no_confwarn_with_consumer_and_producer_only_keys(
    config: dict[str, Any], connector_factory: ConnectorFactory
) -> None:
    config["kafka"]["client"] = {
        "session.timeout.ms": 10000,  # consumer-only, from docs/configuration.md
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 300000,
        "linger.ms": 10,  # producer-only
        "socket.keepalive.enable": True,  # every client
    }
    connector = connector_factory.start(config)
    wait_for(lambda: connector.readyz()[1]["assigned_partitions"] == 2, 30, "partitions assigned")
    assert connector.terminate() == 0

    output = connector.output()
    assert "librdkafka" in output or "started:" in output  # the log was captured at all
    assert "CONFWARN" not in output, output


def test_run_creates_a_missing_dead_letter_topic(
    config: dict[str, Any], connector_factory: ConnectorFactory, bootstrap: str
) -> None:
    dlq = config["dead_letter"]["topic"]
    assert dlq not in topics(bootstrap)

    connector = connector_factory.start(config)
    assert dlq in topics(bootstrap)
    assert f"created topic {dlq}" in connector.output()
    assert connector.terminate() == 0


def run(tmp_path: Path, config: dict[str, Any], env: dict[str, str]) -> Any:
    return run_cli("run", "--config", str(write_config(tmp_path, config)), env=env, timeout=60)


def test_run_exits_2_when_the_dead_letter_topic_is_missing_and_may_not_be_created(
    tmp_path: Path, config: dict[str, Any], connector_factory: ConnectorFactory, bootstrap: str
) -> None:
    config["dead_letter"]["create_topic"] = False
    dlq = config["dead_letter"]["topic"]

    result = run(tmp_path, config, connector_factory.env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"configuration error: dead_letter.topic '{dlq}' does not exist and "
        "dead_letter.create_topic is false" in result.stderr
    )
    assert dlq not in topics(bootstrap)  # not created behind the operator's back


def test_run_exits_2_when_the_broker_refuses_to_create_the_dead_letter_topic(
    tmp_path: Path, config: dict[str, Any], connector_factory: ConnectorFactory, bootstrap: str
) -> None:
    config["dead_letter"]["replication_factor"] = 3  # the test cluster has one broker
    dlq = config["dead_letter"]["topic"]

    result = run(tmp_path, config, connector_factory.env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"dead_letter.topic '{dlq}' does not exist and cannot be created: " in result.stderr
    assert "replication factor" in result.stderr.lower()
    assert dlq not in topics(bootstrap)


def test_run_accepts_an_existing_dead_letter_topic_without_create_rights(
    config: dict[str, Any], connector_factory: ConnectorFactory, bootstrap: str
) -> None:
    config["dead_letter"]["create_topic"] = False
    create_topic(bootstrap, config["dead_letter"]["topic"], 1)

    connector = connector_factory.start(config)
    assert "dead-letter topic" in connector.output()
    assert connector.terminate() == 0


def test_check_validates_the_creation_without_creating(
    tmp_path: Path, config: dict[str, Any], connector_factory: ConnectorFactory, bootstrap: str
) -> None:
    dlq = config["dead_letter"]["topic"]
    path = write_config(tmp_path, config)
    result = run_cli("check", "--config", str(path), "--timeout", "5", env=connector_factory.env)
    line = next(row for row in result.stdout.splitlines() if row.startswith("dead-letter topic"))
    assert " ok " in line and "run creates it" in line, result.stdout
    assert dlq not in topics(bootstrap)

    config["dead_letter"]["replication_factor"] = 3
    path = write_config(tmp_path, config)
    result = run_cli("check", "--config", str(path), "--timeout", "5", env=connector_factory.env)
    line = next(row for row in result.stdout.splitlines() if row.startswith("dead-letter topic"))
    assert "FAIL" in line and "cannot be created" in line, result.stdout
    assert result.returncode == 1


def group_instance_ids(bootstrap: str, group: str) -> list[str | None]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [described] = admin.describe_consumer_groups([group]).values()
    return [member.group_instance_id for member in described.result(10).members]


def test_run_joins_as_a_static_member_named_by_the_environment(
    config: dict[str, Any], connector_factory: ConnectorFactory, bootstrap: str
) -> None:
    config["kafka"]["group_instance_id_env"] = "TEST_POD_NAME"
    connector_factory.env["TEST_POD_NAME"] = "cdp-connector-0"
    connector = connector_factory.start(config)
    wait_for(lambda: connector.readyz()[1]["assigned_partitions"] == 2, 30, "partitions assigned")

    assert group_instance_ids(bootstrap, config["kafka"]["group_id"]) == ["cdp-connector-0"]
    assert connector.terminate() == 0


def test_run_without_the_named_variable_exits_2(
    tmp_path: Path, config: dict[str, Any], connector_factory: ConnectorFactory
) -> None:
    config["kafka"]["group_instance_id_env"] = "TEST_POD_NAME_UNSET"

    result = run(tmp_path, config, connector_factory.env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "kafka.group_instance_id_env: environment variable TEST_POD_NAME_UNSET is not set" in (
        result.stderr
    )
