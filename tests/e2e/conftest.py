"""The three real processes for the end-to-end tests, and a shopper's client for them."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import TEST_SETTINGS
from tests.support import Stack, reset_databases, reset_vhost, wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TERMINAL = {"finished", "cancelled"}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    anyio.run(reset_databases, TEST_SETTINGS)
    reset_vhost()
    stack = Stack(TEST_SETTINGS, ARTIFACTS / "e2e-logs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    stack.start()
    yield stack
    codes = stack.stop()
    assert codes == {"gateway": 0, "orders": 0, "payments": 0}, f"a process did not drain cleanly: {codes}"


@pytest.fixture
def running(stack: Stack) -> Stack:
    """The stack with every process up (a fault test may have stopped one)."""
    stack.start()
    return stack


class Shopper:
    """What the page does, over the gateway's HTTP API and WebSocket."""

    def __init__(self, base_url: str, ws_url: str, user_id: int | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15)
        self.ws_url = ws_url
        self.user_id = user_id if user_id is not None else new_user_id()

    def create_account(self) -> httpx.Response:
        return self.http.post("/accounts", json={"user_id": self.user_id})

    def deposit(self, amount: int) -> httpx.Response:
        return self.http.post("/accounts/deposit", json={"user_id": self.user_id, "amount": amount})

    def balance(self) -> int:
        response = self.http.get("/accounts/balance", params={"user_id": self.user_id})
        assert response.status_code == 200, response.text
        return response.json()["balance"]

    def order(self, amount: int) -> dict:
        response = self.http.post("/orders", json={"user_id": self.user_id, "amount": amount})
        assert response.status_code == 201, response.text
        return response.json()

    def orders(self) -> list[dict]:
        response = self.http.get("/orders", params={"user_id": self.user_id, "limit": 1000})
        assert response.status_code == 200, response.text
        return response.json()

    def order_by_id(self, order_id: int) -> dict:
        response = self.http.get("/orders/by-id", params={"id": order_id})
        assert response.status_code == 200, response.text
        return response.json()

    def wait_terminal(self, order_ids: set[int], timeout: float = 30) -> dict[int, dict]:
        def settled() -> dict[int, dict] | None:
            orders = {o["id"]: o for o in self.orders() if o["id"] in order_ids}
            return orders if len(orders) == len(order_ids) and all(
                o["status"] in TERMINAL for o in orders.values()) else None

        return wait_until(settled, timeout=timeout, interval=0.1, what=f"{len(order_ids)} orders to settle")

    @contextmanager
    def connect(self) -> Iterator[ClientConnection]:
        """A WebSocket whose subscription is active (it had its first pong)."""
        with connect(f"{self.ws_url}?user_id={self.user_id}", open_timeout=10) as ws:
            ws.send("ping")
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
            yield ws


def new_user_id() -> int:
    return random.randrange(10**9, 2**62)


def next_result(ws: ClientConnection, timeout: float = 15) -> dict:
    """The next payment_result frame (pongs are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if frame.get("type") == "payment_result":
            return frame


@pytest.fixture
def shopper(running: Stack) -> Iterator[Shopper]:
    s = Shopper(running.gateway_url, running.ws_url)
    yield s
    s.http.close()
