"""The chart's alerts and dashboard: promtool's own unit tests, and only real metric names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helm.helm_helpers import Helm, find, one, run
from tests.monitoring import (
    DASHBOARD,
    dashboard_queries,
    exported_metric_names,
    metric_names,
    render_rules,
    tool,
)

pytestmark = pytest.mark.helm

PROMTOOL_TESTS = Path(__file__).with_name("promtool") / "alerts.test.yaml"
# Exported but not on the dashboard, on purpose: offsets say nothing a lag panel doesn't.
NOT_ON_DASHBOARD = {"cdp_connector_committed_offset"}


@pytest.fixture(scope="module")
def chart(charts: Path) -> Path:
    return charts / "cdp-connector"


def test_rendered_rules_pass_promtool_check_and_unit_tests(
    k8s: Helm, chart: Path, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(render_rules(k8s, chart))
    shutil.copy(PROMTOOL_TESTS, tmp_path / "alerts.test.yaml")
    promtool = tool("promtool")

    checked = run([promtool, "check", "rules", str(tmp_path / "rules.yaml")])
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = run([promtool, "test", "rules", str(tmp_path / "alerts.test.yaml")], check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_catches_an_alert_that_does_not_fire(
    k8s: Helm, chart: Path, tmp_path: Path
) -> None:
    # The same unit tests against rules whose circuit alert waits 30m instead of 5m.
    rules = render_rules(k8s, chart, "metrics.prometheusRule.for.circuitOpen=30m")
    (tmp_path / "rules.yaml").write_text(rules)
    shutil.copy(PROMTOOL_TESTS, tmp_path / "alerts.test.yaml")
    tested = run([tool("promtool"), "test", "rules", str(tmp_path / "alerts.test.yaml")],
                 check=False)  # fmt: skip
    assert tested.returncode == 1
    assert "CdpConnectorCircuitOpen" in tested.stdout + tested.stderr


def test_every_alert_reads_only_exported_metrics_of_this_release(k8s: Helm, chart: Path) -> None:
    rules = yaml.safe_load(render_rules(k8s, chart))["groups"][0]["rules"]
    exported = exported_metric_names()
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)
        # Each metric is read through the release's selector, never across releases.
        reads = re.findall(r"cdp_connector_\w+(\{[^}]*\})?", rule["expr"])
        assert set(reads) == {'{namespace="shop", job="cdp-cdp-connector-metrics"}'}, rule


def test_the_selector_and_interval_are_values(k8s: Helm, chart: Path) -> None:
    spec = yaml.safe_load(
        render_rules(
            k8s,
            chart,
            'metrics.prometheusRule.selector=job="x"',
            "metrics.prometheusRule.interval=15s",
        )
    )
    group = spec["groups"][0]
    assert group["interval"] == "15s"
    assert all('{job="x"}' in rule["expr"] for rule in group["rules"])


def test_dashboard_queries_name_only_exported_metrics_and_show_all_of_them() -> None:
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
    used = set().union(*(metric_names(q) for q in queries))
    exported = exported_metric_names()
    assert used <= exported, used - exported
    shown = {name.removesuffix("_total").removesuffix("_bucket") for name in used}
    families = {n for n in exported if not n.endswith(("_created", "_count", "_sum"))}
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in families}
    assert families - shown == NOT_ON_DASHBOARD


def test_the_name_check_sees_through_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="b_total", le=~".+"}[5m])))'
        " / on (job) group_left bar and ignoring (pod) baz offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "bar", "baz"}
    assert metric_names('label_values(cdp_connector_info{namespace="$n"}, job)') == {
        "cdp_connector_info"
    }


def test_alerts_and_dashboard_are_off_by_default(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "default.yaml")
    assert find(docs, "PrometheusRule") == []
    assert [
        d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ] == []


def test_dashboard_configmap_carries_the_file_and_the_sidecar_label(k8s: Helm, chart: Path) -> None:
    docs = k8s.template(chart, "default.yaml", sets=["metrics.grafanaDashboard.enabled=true"])
    [config_map] = [
        d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["cdp-connector.json"])
    assert shipped == json.loads(DASHBOARD.read_text())
    rule = one(k8s.template(chart, "default.yaml", sets=["metrics.prometheusRule.enabled=true",
                                                          "metrics.prometheusRule.labels.release=prom"]),
               "PrometheusRule")  # fmt: skip
    assert rule["metadata"]["labels"]["release"] == "prom"
