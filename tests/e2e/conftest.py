"""The three real processes for the end-to-end tests, and the clients a test gets on
them. What the tests do through those clients lives in modules of its own: shopper.py,
money.py, burst.py, probe.py, scenarios.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import package_stack
from tests.e2e.shopper import Shopper
from tests.support import Stack

stack = package_stack()


@pytest.fixture
def shopper(running: Stack) -> Iterator[Shopper]:
    """A new user's shopper (no account yet) on the running stack."""
    s = Shopper(running.gateway_url, running.ws_url)
    yield s
    s.http.close()


@pytest.fixture
def client(running: Stack) -> Iterator[httpx.Client]:
    """A plain HTTP client on the gateway, safe to share between threads."""
    with httpx.Client(base_url=running.gateway_url, timeout=15,
                      limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as http:
        yield http
