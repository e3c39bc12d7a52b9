"""The PromQL that deploy/ runs against the services — every query of the Grafana
dashboard and every expression of the alert rules — and the samples each one selects,
with the services (Prometheus jobs) its `job` matcher lets them come from.

Read with a small tokenizer, enough for what these files hold: `promtool check rules`
judges the syntax (tests/deploy/test_observability.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from tests.deploy.compose import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
ALERT_RULES = PROMETHEUS / "alerts.yml"
ALERT_TESTS = ROOT / "tests" / "deploy" / "alerts_test.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "gozon.json"

SERVICES = ("gateway", "orders", "payments")
# Series Prometheus makes itself for each target.
PROMETHEUS_MADE = frozenset({"up"})

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])\s*(\{[^}]*\})?")
_JOB = re.compile(r'\bjob\s*(=~|!~|!=|=)\s*"([^"]*)"')
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


@dataclass(frozen=True)
class Selected:
    sample: str  # as exposed: gozon_inbox_processed_total, gozon_x_seconds_bucket
    jobs: frozenset[str]


def panel_queries() -> Iterator[tuple[str, str]]:
    """(panel title, expression) for every query of the dashboard."""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]


def rule_queries() -> Iterator[tuple[str, str]]:
    """(alert name, expression) for every alert rule."""
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def all_queries() -> list[tuple[str, str]]:
    return [*panel_queries(), *rule_queries()]


def selected(expr: str) -> set[Selected]:
    """The series selectors of `expr`: the sample name each asks for and the jobs it admits."""
    text = _GROUPING.sub(" ", expr)
    found = set()
    for match in _SELECTOR.finditer(text):
        name, matchers = match.group(1), match.group(2) or ""
        if name in _KEYWORDS or text[match.end():].lstrip().startswith("("):  # a function or an aggregation
            continue
        found.add(Selected(name, _jobs(matchers)))
    return found


def _jobs(matchers: str) -> frozenset[str]:
    jobs = set(SERVICES)
    for op, value in _JOB.findall(matchers):
        matching = {job for job in SERVICES if (re.fullmatch(value, job) if "~" in op else job == value)}
        jobs &= matching if op in ("=", "=~") else set(SERVICES) - matching
    return frozenset(jobs)
