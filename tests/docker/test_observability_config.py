"""docker/prometheus and docker/grafana: the rules pass promtool, and every metric they use is on /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.trading_app import market_venue, traded

__all__ = ["market_venue", "traded"]

DOCKER = Path(__file__).resolve().parents[2] / "docker"
RULES = DOCKER / "prometheus" / "alerts.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "alphatide.json"
METRIC = re.compile(r"\b((?:alphatide|process)_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def panel_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def exported_names(client: TestClient) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(client.get("/metrics").text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def test_the_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install -y prometheus)")

    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_cover_the_spec_alerts() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}

    assert {"KillSwitchFired", "WebSocketDown", "DrawdownHigh", "ReconciliationMismatch", "StaleFeatures"} <= set(
        rules
    )
    assert rules["WebSocketDown"]["for"] == "30s"


def test_every_metric_a_rule_or_panel_uses_is_on_metrics(traded: tuple[TestClient, Any]) -> None:
    client, _ = traded
    used = {m for expr in rule_exprs() + panel_exprs() for m in METRIC.findall(expr)}

    missing = used - exported_names(client)

    assert len(used) > 20 and not missing, sorted(missing)


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/alphatide.yml").read_text())
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    dashboard = json.loads(DASHBOARD.read_text())

    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.endswith(":" + provider["providers"][0]["options"]["path"] + ":ro") for m in mounts)
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["datasources"][0]["uid"]}
    assert "prometheus" in compose["services"] and "serving" in compose["services"]["prometheus"]["depends_on"]
