"""No secret in any output: run, check, replay-dlq, /metrics, /readyz and every --help."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from connector.sample_clickstream import sample_records
from tests.integration.connector_proc import ConnectorFactory
from tests.integration.ops_helpers import run_cli, write_config
from tests.integration.test_pipeline import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SASL_PASSWORD = "sasl-pw-Kx93vQ"  # noqa: S105 - distinctive test values to grep for
REGISTRY_USER = "registry-user-Mh27"
REGISTRY_PASSWORD = "registry-pw-Tb55wZ"  # noqa: S105
WRONG_TOKEN = "wrong-token-Pq71sR"  # noqa: S105


def test_no_secret_appears_in_any_output(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory, tmp_path: Path,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique, partitions=1)
    scenario.produce(sample_records(30, guests=5, seed=41), ((b"bad", b"\x07not avro"),))
    env = {
        **connector_factory.env,
        "KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "REGISTRY_USER": REGISTRY_USER,
        "REGISTRY_PASSWORD": REGISTRY_PASSWORD,
    }
    connector_factory.env = env
    config = scenario.config(
        connector_factory, cdp_sandbox.url,
        # sasl.mechanism makes the connector hand the password to librdkafka (which
        # ignores it on this PLAINTEXT listener); DEBUG logs say the most.
        kafka={"group_id": scenario.group, "client": {"sasl.mechanism": "PLAIN",
                                                      "sasl.username": "connector"}},
        schema_registry={"url": schema_registry.url, "username_env": "REGISTRY_USER",
                         "password_env": "REGISTRY_PASSWORD"},
        observability={"log_level": "DEBUG"},
    )  # fmt: skip
    connector = connector_factory.start(config)
    scenario.caught_up()
    outputs = [connector.metrics(), str(connector.readyz()[1])]
    assert connector.terminate() == 0
    outputs.append(connector.output())
    assert "dead-lettering record" in connector.output()  # the logs really were written

    path = write_config(tmp_path, config, "secrets.yaml")
    for extra_env in ({}, {"CDP_API_TOKEN": WRONG_TOKEN}):
        result = run_cli("check", "--config", str(path), "--timeout", "5", env={**env, **extra_env})
        outputs += [result.stdout, result.stderr]
    result = run_cli("replay-dlq", "--config", str(path), env=env)  # the bad one fails again
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed again        1" in result.stdout
    outputs += [result.stdout, result.stderr]
    for command in ([], ["run"], ["check"], ["replay-dlq"], ["sandbox"], ["map"]):
        result = run_cli(*command, "--help", env=env)
        outputs += [result.stdout, result.stderr]

    text = "\n".join(outputs)
    secrets = {
        "api token": cdp_sandbox.api_token,
        "wrong api token": WRONG_TOKEN,
        "sasl password": SASL_PASSWORD,
        "registry password": REGISTRY_PASSWORD,
        "authorization header": base64.b64encode(
            f"{cdp_sandbox.client_key}:{cdp_sandbox.api_token}".encode()
        ).decode(),
        "registry authorization": base64.b64encode(
            f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()
        ).decode(),
    }
    leaked = [name for name, value in secrets.items() if value in text]
    assert leaked == []
    assert len(text) > 5000  # a lot was said, none of it secret
    scenario.registry_client.close()
