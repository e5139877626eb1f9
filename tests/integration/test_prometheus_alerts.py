"""A real Prometheus scrapes a running connector and evaluates the chart's own alert rules.

The rules are rendered by helm from the chart (short ``for`` and a 1 s evaluation
interval through values); the scrape job and labels are what a ServiceMonitor on the
chart's Service would give, so the chart's default selector picks the series. During a
sandbox outage ``CdpConnectorCircuitOpen`` fires; after it, it clears.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.sample_clickstream import sample_records
from scripts.services.common import Service, free_port, spawn, wait_until
from tests.helm.helm_helpers import Helm
from tests.integration.connector_proc import ConnectorFactory, ConnectorProcess, wait_for
from tests.integration.test_pipeline import Scenario
from tests.monitoring import render_rules, tool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.helm]

JOB = "cdp-cdp-connector-metrics"  # release "cdp": the Service a ServiceMonitor scrapes
ALERT = "CdpConnectorCircuitOpen"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


class Prometheus:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.url = f"http://127.0.0.1:{service.port}"

    def alerts(self, name: str) -> list[dict[str, Any]]:
        found = _get(self.url + "/api/v1/alerts")["data"]["alerts"]
        return [a for a in found if a["labels"]["alertname"] == name]

    def firing(self, name: str) -> bool:
        return any(a["state"] == "firing" for a in self.alerts(name))

    def up(self) -> bool:
        query = self.url + "/api/v1/query?query=" + urllib.request.quote(f'up{{job="{JOB}"}}')
        result = _get(query)["data"]["result"]
        return bool(result) and result[0]["value"][1] == "1"


@pytest.fixture
def prometheus_for(tmp_path: Path, k8s: Helm, charts: Path) -> Iterator[Any]:
    started: list[Service] = []

    def start(connector: ConnectorProcess) -> Prometheus:
        rules = render_rules(
            k8s, charts / "cdp-connector",
            "metrics.prometheusRule.interval=1s", "metrics.prometheusRule.for.circuitOpen=3s",
        )  # fmt: skip
        (tmp_path / "rules.yaml").write_text(rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yaml")],
            "scrape_configs": [{
                "job_name": JOB, "scrape_interval": "1s", "scrape_timeout": "1s",
                "static_configs": [{
                    "targets": [f"127.0.0.1:{connector.port}"],
                    "labels": {"namespace": "shop", "pod": "cdp-connector-0"},
                }],
            }],
        }  # fmt: skip
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = tmp_path / "prometheus.log"
        proc = spawn(
            [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            log,
        )  # fmt: skip
        service = Service(proc, port, log)
        started.append(service)
        prometheus = Prometheus(service)

        def ready() -> bool:
            try:
                with urllib.request.urlopen(prometheus.url + "/-/ready", timeout=1) as r:  # noqa: S310
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(ready, proc, 30, "Prometheus", log)
        return prometheus

    yield start
    for service in started:
        service.stop()


def test_circuit_open_alert_fires_in_an_outage_and_clears_after_it(
    bootstrap: str, schema_registry: Any, unique: str, cdp_sandbox: Any,
    connector_factory: ConnectorFactory, prometheus_for: Any,
) -> None:  # fmt: skip
    scenario = Scenario(bootstrap, schema_registry.url, unique)
    config = scenario.config(
        connector_factory, cdp_sandbox.url,
        delivery={"circuit": {"failure_threshold": 5, "open_seconds": 0.5,
                              "max_open_seconds": 1.0},
                  "retry": {"max_attempts": 100, "initial_backoff_seconds": 0.05,
                            "max_backoff_seconds": 0.5}},
    )  # fmt: skip
    connector = connector_factory.start(config)
    prometheus = prometheus_for(connector)
    scenario.produce(sample_records(40, guests=10, seed=31))
    scenario.caught_up()
    wait_for(prometheus.up, 20, "Prometheus to scrape the connector")
    time.sleep(3)  # several evaluations with the circuit closed
    assert prometheus.alerts(ALERT) == []

    cdp_sandbox.set_faults(outage_seconds=3600)
    scenario.produce(sample_records(60, guests=20, seed=32))
    wait_for(lambda: connector.metric("cdp_connector_circuit_open") == 1, 30, "circuit open")
    wait_for(lambda: prometheus.firing(ALERT), 30, f"{ALERT} to fire")
    [alert] = prometheus.alerts(ALERT)
    assert alert["labels"]["namespace"] == "shop"
    assert alert["labels"]["pod"] == "cdp-connector-0"
    assert alert["labels"]["severity"] == "warning"

    cdp_sandbox.clear_faults()
    scenario.caught_up()
    wait_for(lambda: prometheus.alerts(ALERT) == [], 30, f"{ALERT} to clear")
    assert connector.metric("cdp_connector_circuit_open") == 0
    assert connector.terminate() == 0
    scenario.registry_client.close()
