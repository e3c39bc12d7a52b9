"""Reading the services' `/metrics` as Prometheus scrapes them, for the e2e tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.queries import SERVICES
from tests.support import Stack, wait_until

class Scrape:
    """One read of a service's `/metrics`: each sample's value by name and labels."""

    def __init__(self, stack: Stack, service: str) -> None:
        response = httpx.get(f"http://127.0.0.1:{stack[service].port}/metrics", timeout=5)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=")
        self.text = response.text
        self.samples = {(sample.name, frozenset(sample.labels.items())): sample.value
                        for family in text_string_to_metric_families(response.text) for sample in family.samples}

    def __call__(self, name: str, **labels: str) -> float:
        """The sample's value; a labelled counter not yet incremented is absent, i.e. 0."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str) -> float:
        return sum(value for (sample, _), value in self.samples.items() if sample == name)


def scrape_all(stack: Stack) -> dict[str, Scrape]:
    return {name: Scrape(stack, name) for name in SERVICES}


def scrape_when(stack: Stack, service: str, until: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape `service` until `until` holds of a scrape (a bounded wait); that scrape."""

    def attempt() -> Scrape | None:
        scrape = Scrape(stack, service)
        return scrape if until(scrape) else None

    return wait_until(attempt, timeout=30, interval=0.1, what=what)
