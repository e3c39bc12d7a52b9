"""What deploy/'s Grafana dashboard and Prometheus alerts query, against the real
services after scenario 1: every sample they ask for is exposed by each service their
`job` matcher names (gateway metrics on the gateway, the outbox on orders and payments),
so no panel stays empty and no alert waits on a series that never comes."""

from __future__ import annotations

from tests.deploy.queries import PROMETHEUS_MADE, all_queries, selected
from tests.e2e.scenarios import paid_order
from tests.e2e.scrape import scrape_all
from tests.e2e.shopper import Shopper
from tests.support import Stack


def test_every_sample_the_dashboard_and_the_alerts_query_is_exposed_after_scenario_1(
        running: Stack, shopper: Shopper) -> None:
    paid_order(shopper)
    exposed = {service: {name for name, _ in scrape.samples} for service, scrape in scrape_all(running).items()}
    queried = [(where, sample) for where, expr in all_queries() for sample in selected(expr)
               if sample.sample not in PROMETHEUS_MADE]
    assert len(queried) > 20, "the queries were not read"
    missing = [f"{where}: {sample.sample} on {job}" for where, sample in queried for job in sorted(sample.jobs)
               if sample.sample not in exposed[job]]
    assert missing == []


def test_the_settle_latency_of_scenario_1_is_observed_under_its_status(running: Stack, shopper: Shopper) -> None:
    before = scrape_all(running)["orders"]
    paid_order(shopper)
    after = scrape_all(running)["orders"]

    def moved(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    assert moved("gozon_orders_placed_total") == 1
    assert moved("gozon_order_settle_duration_seconds_count", status="finished") == 1
    assert moved("gozon_order_settle_duration_seconds_count", status="cancelled") == 0
    waited = moved("gozon_order_settle_duration_seconds_sum", status="finished")
    assert 0 < waited < 15, "not the seconds from the POST to the result"
