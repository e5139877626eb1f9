"""Shared by the alert, dashboard and Prometheus tests: the tools, the metric names.

promtool and prometheus come from Debian's ``prometheus`` package (scripts/setup
installs it). A missing tool fails the test, saying so: a monitoring tier that
silently skips would prove nothing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.observability import Metrics
from tests.helm.helm_helpers import VALUES, Helm, one

DASHBOARD = Path(__file__).resolve().parents[1] / "helm/cdp-connector/files/dashboard.json"

# What a family of each type exports (prometheus_client also exports `_created`).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
# PromQL words that are neither metric names nor followed by "(".
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH; scripts/setup installs it (Debian's prometheus package)",
            pytrace=False,
        )
    return path


def exported_metric_names() -> set[str]:
    """Every sample name the connector's registry can export (labelled or not)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana ``label_values(...)``) reads.

    Strings, label matchers, ranges and ``by``/``on`` label lists are dropped; what
    remains is function names (followed by ``(``), keywords, numbers and metric names.
    """
    grafana = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.DOTALL)
    if grafana:
        expr = grafana.group(1)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every query of the dashboard: panel targets and templating variables."""
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def render_rules(k8s: Helm, chart: Path, *sets: str, values: str = "default.yaml") -> str:
    """The PrometheusRule's ``spec`` as a Prometheus rule file (release cdp, namespace shop)."""
    args = ["template", "cdp", str(chart), "--namespace", "shop", "-f", str(VALUES / values),
            "--set", "metrics.prometheusRule.enabled=true"]  # fmt: skip
    for item in sets:
        args += ["--set", item]
    docs = [doc for doc in yaml.safe_load_all(k8s.helm(*args).stdout) if doc]
    return yaml.safe_dump(one(docs, "PrometheusRule")["spec"], sort_keys=False)
