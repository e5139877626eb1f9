"""The connector against a real SASL_SSL listener: SCRAM-SHA-512 over TLS, a CA made at
test time. `check`, `run`, `replay-dlq` and the browser-id topic go through it; a wrong
password is reported within seconds instead of being retried forever.

Topics are made and results read through the broker's PLAINTEXT listener (test setup);
the connector is given only the SASL_SSL one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from connector.sample_clickstream import sample_records
from scripts.services.kafka import Broker
from tests.conftest import SASL_USER
from tests.fixtures_sandbox import KNOWN_POS
from tests.integration.connector_proc import REPO_ROOT, ConnectorFactory
from tests.integration.kafka_helpers import create_topic
from tests.integration.ops_helpers import run_cli, write_config
from tests.integration.streams import read_topic
from tests.integration.test_check import rows
from tests.integration.test_pipeline import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WRONG = "not-the-password"


def sasl_client(broker: Broker) -> dict[str, str]:
    """What goes under kafka.client: everything but the password (that comes from env)."""
    assert broker.sasl is not None
    conf = broker.sasl.client_conf()
    del conf["bootstrap.servers"], conf["sasl.password"]
    return conf


@pytest.fixture
def factory(tmp_path: Path, sasl_broker: Broker, cdp_sandbox: Any) -> Any:
    assert sasl_broker.sasl is not None
    env = {"CDP_CLIENT_KEY": cdp_sandbox.client_key, "CDP_API_TOKEN": cdp_sandbox.api_token,
           "KAFKA_SASL_PASSWORD": SASL_USER.password}  # fmt: skip
    factory = ConnectorFactory(tmp_path, sasl_broker.sasl.bootstrap, env)
    yield factory
    for running in factory.started:
        running.kill()


@pytest.fixture
def scenario(sasl_broker: Broker, schema_registry: Any, unique: str) -> Any:
    return Scenario(sasl_broker.bootstrap, schema_registry.url, unique, partitions=2)


def sasl_config(scenario: Scenario, factory: ConnectorFactory, sandbox: Any,
                broker: Broker, **sections: Any) -> dict[str, Any]:  # fmt: skip
    config = scenario.config(factory, sandbox.url, **sections)
    config["kafka"]["client"] = sasl_client(broker)
    return config


def test_check_passes_through_sasl_ssl(
    tmp_path: Path, scenario: Scenario, factory: ConnectorFactory, cdp_sandbox: Any,
    sasl_broker: Broker,
) -> None:  # fmt: skip
    path = write_config(tmp_path, sasl_config(scenario, factory, cdp_sandbox, sasl_broker))
    result = run_cli("check", "--config", str(path), env=factory.env)
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert table["kafka broker"][0] == "ok"
    assert table[f"topic {scenario.topic}"][0] == "ok"
    assert table[f"dead-letter topic {scenario.dlq}"][0] == "ok"
    assert SASL_USER.password not in result.stdout + result.stderr


def test_check_reports_a_wrong_password_within_seconds(
    tmp_path: Path, scenario: Scenario, factory: ConnectorFactory, cdp_sandbox: Any,
    sasl_broker: Broker,
) -> None:  # fmt: skip
    path = write_config(tmp_path, sasl_config(scenario, factory, cdp_sandbox, sasl_broker))
    started = time.monotonic()
    result = run_cli("check", "--config", str(path), "--timeout", "20",
                     env={**factory.env, "KAFKA_SASL_PASSWORD": WRONG})  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    mark, detail = rows(result.stdout)["kafka broker"]
    assert mark == "FAIL"
    assert "Kafka refused the credentials" in detail
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in detail
    assert elapsed < 12, f"took {elapsed:.1f}s: waited for the 20 s timeout"  # not the timeout
    assert WRONG not in result.stdout + result.stderr


def test_run_and_replay_dlq_work_through_sasl_ssl(
    scenario: Scenario, factory: ConnectorFactory, cdp_sandbox: Any, sasl_broker: Broker,
    tmp_path: Path,
) -> None:  # fmt: skip
    records = sample_records(60, guests=10, seed=41)
    scenario.produce(records, ((b"bad", b"\x07not avro"),))
    config = sasl_config(scenario, factory, cdp_sandbox, sasl_broker)
    connector = factory.start(config)
    scenario.caught_up()
    assert connector.metric("cdp_connector_records_delivered_total") > 0
    [letter] = scenario.dead_letters(1)
    assert letter.key() == b"bad"
    assert connector.terminate() == 0
    assert SASL_USER.password not in connector.output()

    # replay-dlq through the same listener: the undecodable record fails again and is
    # written back (a produce through SASL_SSL), the replay group commits past it.
    path = write_config(tmp_path, config, "replay.yaml")
    result = run_cli("replay-dlq", "--config", str(path), env=factory.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(read_topic(scenario.bootstrap, scenario.dlq, 2)) == 2


def test_browser_id_topic_works_through_sasl_ssl(
    scenario: Scenario, factory: ConnectorFactory, cdp_sitecore_sandbox: Any,
    sasl_broker: Broker, unique: str,
) -> None:  # fmt: skip
    ids_topic = f"browser-ids-{unique}"
    create_topic(sasl_broker.bootstrap, ids_topic, 1)
    records = sample_records(80, guests=8, seed=42)
    scenario.produce(records)
    config = sasl_config(
        scenario, factory, cdp_sitecore_sandbox, sasl_broker,
        mapping=str(REPO_ROOT / "config" / "mappings.sitecore.yaml"),
        cdp={"base_url": cdp_sitecore_sandbox.url, "region": None, "dialect": "sitecore",
             "points_of_sale": list(KNOWN_POS), "browser_ids": {"topic": ids_topic}},
    )  # fmt: skip
    connector = factory.start(config)
    scenario.caught_up()
    visitors = {r["anonymous_id"] for r in records}
    assert cdp_sitecore_sandbox.stats()["browsers_created"] == len(visitors)
    assert len(read_topic(scenario.bootstrap, ids_topic, len(visitors))) == len(visitors)
    assert connector.terminate() == 0


def test_run_with_a_wrong_password_stops_within_seconds(
    scenario: Scenario, factory: ConnectorFactory, cdp_sandbox: Any, sasl_broker: Broker,
) -> None:  # fmt: skip
    factory.env = {**factory.env, "KAFKA_SASL_PASSWORD": WRONG}
    started = time.monotonic()
    # Refused at start (the dead-letter topic check) it never listens: don't wait for it.
    connector = factory.start(
        sasl_config(scenario, factory, cdp_sandbox, sasl_broker), wait_listening=False
    )
    code = connector.proc.wait(timeout=30)
    elapsed = time.monotonic() - started
    output = connector.output()
    assert code == 2, output  # a configuration error: a password no retry can fix
    assert "Kafka refused the credentials" in output
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert WRONG not in output
