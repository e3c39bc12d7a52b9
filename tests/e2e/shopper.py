"""A shopper's client for the gateway: `Shopper` does what the page does, over the HTTP
API and the WebSocket; the functions below do the same for tests that drive many users
through one plain HTTP client."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support import wait_until

TERMINAL = {"finished", "cancelled"}


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
        return balance_of(self.http, self.user_id)

    def order(self, amount: int) -> dict:
        response = self.http.post("/orders", json={"user_id": self.user_id, "amount": amount})
        assert response.status_code == 201, response.text
        return response.json()

    def orders(self) -> list[dict]:
        return orders_of(self.http, self.user_id)

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


def results_until(ws: ClientConnection, order_ids: set[int], timeout: float) -> dict[int, dict]:
    """payment_result frames, by order id, until every id of `order_ids` was seen (the
    others are kept too; a duplicate after a fault is allowed: the page shows each
    order once)."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while not order_ids <= seen.keys():
        frame = next_result(ws, timeout=max(0.01, deadline - time.monotonic()))
        seen.setdefault(frame["order_id"], frame)
    return seen


def funded_user(http: httpx.Client, deposit: int, user_id: int | None = None) -> int:
    """A new user with an account holding `deposit` (0: account, no deposit)."""
    user_id = new_user_id() if user_id is None else user_id
    created = http.post("/accounts", json={"user_id": user_id})
    assert created.status_code == 201, created.text
    if deposit:
        deposited = http.post("/accounts/deposit", json={"user_id": user_id, "amount": deposit})
        assert deposited.status_code == 200, deposited.text
        assert deposited.json()["balance"] == deposit
    return user_id


def balance_of(http: httpx.Client, user_id: int) -> int:
    response = http.get("/accounts/balance", params={"user_id": user_id})
    assert response.status_code == 200, response.text
    return response.json()["balance"]


def orders_of(http: httpx.Client, user_id: int) -> list[dict]:
    response = http.get("/orders", params={"user_id": user_id, "limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()


def wait_settled(http: httpx.Client, user_ids: Iterable[int], must_include: set[int] = frozenset(), *,
                 timeout: float = 60) -> dict[int, list[dict]]:
    """Every order of every user in `user_ids` terminal (and every id of `must_include`
    among them): the users' orders, by user. An order whose POST got no answer (a
    process died under it) may exist or not; if it exists it must settle too."""
    user_ids = list(user_ids)

    def settled() -> dict[int, list[dict]] | None:
        by_user = {}
        for user_id in user_ids:
            orders = orders_of(http, user_id)
            if any(o["status"] not in TERMINAL for o in orders):
                return None
            by_user[user_id] = orders
        seen = {o["id"] for orders in by_user.values() for o in orders}
        return by_user if must_include <= seen else None

    return wait_until(settled, timeout=timeout, interval=0.2, what="every order to be finished or cancelled")
