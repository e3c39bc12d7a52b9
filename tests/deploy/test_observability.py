"""The `observability` compose profile without an engine: Prometheus' config and alert
rules as promtool judges them (the alerts fire on the series they should, and only
there), the dashboard's queries as PromQL, and the wiring between compose, Prometheus
and Grafana. That the queried metrics exist is tests/e2e/test_dashboard.py's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gozon.config import Settings
from tests.deploy.compose import ROOT, load
from tests.deploy.queries import (
    ALERT_RULES,
    ALERT_TESTS,
    DASHBOARD,
    GRAFANA,
    PROMETHEUS_CONFIG,
    SERVICES,
    Selected,
    panel_queries,
    selected,
)

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool is missing (deploy/test.sh installs Debian's prometheus as root)")


def promtool(*args: str | Path) -> str:
    done = subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          check=False)
    assert done.returncode == 0, f"promtool {args[0]} {args[1]} says:\n{done.stdout}{done.stderr}"
    return done.stdout


@needs_promtool
def test_the_prometheus_config_and_its_rules_pass_promtool() -> None:
    assert "SUCCESS: 1 rule files found" in promtool("check", "config", PROMETHEUS_CONFIG)
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", ALERT_RULES)


@needs_promtool
def test_each_alert_fires_on_a_series_that_should_trigger_it_and_not_on_a_healthy_one() -> None:
    tested = {test["alertname"] for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
              for test in case["alert_rule_test"] if test["exp_alerts"]}
    alerts = {rule["alert"] for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]}
    assert tested == alerts, "an alert that no test sees firing"
    promtool("test", "rules", ALERT_TESTS)


@needs_promtool
def test_every_dashboard_query_is_promql(tmp_path: Path) -> None:
    # As recording rules, promtool parses them as Prometheus would.
    queries = [expr for _, expr in panel_queries()]
    rules = tmp_path / "dashboard.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(queries)]}]}))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", rules)


def test_the_dashboard_shows_what_an_operator_of_gozon_watches() -> None:
    shown = {sample.sample for _, expr in panel_queries() for sample in selected(expr)}
    assert shown >= {
        "gozon_orders_placed_total", "gozon_order_settle_duration_seconds_count",  # placed, settled per second
        "gozon_order_settle_duration_seconds_bucket",  # POST → result percentiles
        "gozon_outbox_pending_rows", "gozon_outbox_oldest_pending_age_seconds", "gozon_outbox_set_aside_rows",
        "gozon_inbox_duplicates_skipped_total", "gozon_inbox_dead_lettered_total", "gozon_ws_connections",
        "gozon_actor_restarts_total", "gozon_ready",
        "gozon_http_request_duration_seconds_count", "gozon_http_request_duration_seconds_bucket",
    }
    dead_letters = [expr for _, expr in panel_queries() if "gozon_inbox_dead_lettered_total" in expr]
    assert dead_letters and all("by (queue)" in expr for expr in dead_letters), "dead letters not by queue"


def test_queries_name_samples_as_exposed_and_the_services_they_come_from() -> None:
    """What the e2e check relies on: the tokenizer reads names, suffixes and job matchers."""
    assert selected('histogram_quantile(0.99, sum by (le, route) (rate(x_seconds_bucket{job="gateway"}[5m])))') \
        == {Selected("x_seconds_bucket", frozenset({"gateway"}))}
    assert selected('sum(rate(a_total{job=~"orders|payments", queue="q"}[1m])) / on (job) b') == {
        Selected("a_total", frozenset({"orders", "payments"})), Selected("b", frozenset(SERVICES))}
    assert selected('up{job!="gateway"} == 0 and bool c offset 5m') == {
        Selected("up", frozenset({"orders", "payments"})), Selected("c", frozenset(SERVICES))}


def test_prometheus_scrapes_each_service_as_compose_runs_it() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
               for job in config["scrape_configs"]}
    defaults = Settings()
    assert targets == {name: [f"{name}:{getattr(defaults, f'{name}_port')}"] for name in SERVICES}
    services = load()["services"]
    assert all(services[name]["environment"]["GOZON_HOST"] == "0.0.0.0" for name in SERVICES), \
        "a service Prometheus cannot reach from its container"


def mounts(service: dict) -> dict[str, Path]:
    """Where each folder of the checkout a service mounts appears in its container."""
    return {target: ROOT / source for source, target, *_ in (v.split(":") for v in service["volumes"])
            if source.startswith("./")}


def test_the_observability_profile_runs_pinned_images_on_loopback_with_its_config_mounted() -> None:
    services = {name: s for name, s in load()["services"].items() if "observability" in s.get("profiles", ())}
    assert set(services) == {"prometheus", "grafana"}
    for name, service in services.items():
        image, _, tag = service["image"].partition(":")
        assert image in ("prom/prometheus", "grafana/grafana") and tag and tag != "latest", service["image"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), f"{name} published beyond loopback"
        for volume in service["volumes"]:
            source, target, *mode = volume.split(":")
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not there"
                assert mode == ["ro"], f"{name} may write to {source}"
    grafana, prometheus = mounts(services["grafana"]), mounts(services["prometheus"])
    assert grafana["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    [provider] = yaml.safe_load((GRAFANA / "provisioning/dashboards/gozon.yml").read_text())["providers"]
    assert grafana[provider["options"]["path"]] == DASHBOARD.parent, "Grafana looks for the dashboard elsewhere"
    assert prometheus["/etc/prometheus"] == PROMETHEUS_CONFIG.parent, "Prometheus would not find its config"

def test_every_dashboard_panel_reads_the_provisioned_prometheus() -> None:
    [source] = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        uids = {panel["datasource"]["uid"], *(target["datasource"]["uid"] for target in panel["targets"])}
        assert uids == {source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
