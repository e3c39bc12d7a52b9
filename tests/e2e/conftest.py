"""The three real processes for the end-to-end tests, and a shopper's client for them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import TEST_SETTINGS, package_stack
from tests.support import Stack, wait_until


TERMINAL = {"finished", "cancelled"}

stack = package_stack()




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


# ---------------------------------------------------------------------------------------
# Helpers for the concurrency, fault, bad-request, idempotency and drain tests.
# ---------------------------------------------------------------------------------------


@pytest.fixture
def client(running: Stack) -> Iterator[httpx.Client]:
    """A plain HTTP client on the gateway, safe to share between threads."""
    with httpx.Client(base_url=running.gateway_url, timeout=15,
                      limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as http:
        yield http


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


def wait_settled(http: httpx.Client, user_ids, must_include: set[int] = frozenset(), *,
                 timeout: float = 60) -> dict[int, list[dict]]:
    """Every order of every user in `user_ids` terminal (and every id of `must_include`
    among them): the users' orders, by user. An order whose POST got no answer (a
    process died under it) may exist or not; if it exists it must settle too."""

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


def ledger_debits(order_ids) -> dict[int, list[int]]:
    """order_id → the amounts of its ledger debits, read from the payments database
    (invariant 3 cannot be seen through the API)."""
    import asyncpg

    async def fetch() -> dict[int, list[int]]:
        con = await asyncpg.connect(TEST_SETTINGS.payments_db)
        try:
            rows = await con.fetch("SELECT order_id, amount FROM ledger WHERE kind = 'debit'"
                                   " AND order_id = any($1::bigint[])", list(order_ids))
        finally:
            await con.close()
        debits: dict[int, list[int]] = {}
        for row in rows:
            debits.setdefault(row["order_id"], []).append(row["amount"])
        return debits

    return anyio.run(fetch)


def check_money(http: httpx.Client, deposits: dict[int, int], orders_by_user: dict[int, list[dict]]) -> None:
    """Invariants 2 and 3 for every user: balance = deposits − finished amounts, ≥ 0;
    one debit of the order's amount per finished order, none per cancelled one."""
    all_orders = [o for orders in orders_by_user.values() for o in orders]
    debits = ledger_debits(o["id"] for o in all_orders)
    for user_id, deposit in deposits.items():
        orders = orders_by_user[user_id]
        spent = sum(o["amount"] for o in orders if o["status"] == "finished")
        balance = balance_of(http, user_id)
        assert balance >= 0, f"user {user_id}: negative balance {balance}"
        assert balance == deposit - spent, (
            f"user {user_id}: balance {balance} != deposits {deposit} - finished {spent}"
            f" (a double or a lost charge)")
    for order in all_orders:
        expected = [order["amount"]] if order["status"] == "finished" else []
        assert debits.get(order["id"], []) == expected, f"order {order}: ledger debits {debits.get(order['id'])}"


class Burst:
    """POST /orders for every (user_id, amount), `workers` at a time, in a background
    thread, so that the test can kill something in the middle.

    With `retry_for` > 0 each order carries its own Idempotency-Key and is retried, as a
    careful client would, while the answer is 502/503/504/409 or none at all: every
    planned order then ends up created exactly once."""

    def __init__(self, http: httpx.Client, orders: list[tuple[int, int]], *, workers: int = 32,
                 retry_for: float = 0.0) -> None:
        import threading

        self.http = http
        self.orders = orders
        self.workers = workers
        self.retry_for = retry_for
        self.responses: list[tuple[int, int, int | None, dict | str]] = []  # user, amount, status, body
        self.retries = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="burst", daemon=True)
        self.started_at = 0.0
        self.finished_at = 0.0

    def _post(self, user_id: int, amount: int) -> None:
        import uuid

        headers = {"Idempotency-Key": f"burst-{uuid.uuid4()}"} if self.retry_for else {}
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                response = self.http.post("/orders", json={"user_id": user_id, "amount": amount}, headers=headers)
                status = response.status_code
                body = response.json() if status == 201 else response.text
            except httpx.TransportError as exc:  # no answer: the order may or may not exist
                status, body = None, repr(exc)
            if status not in (None, 409, 502, 503, 504) or time.monotonic() > deadline:
                break
            with self._lock:
                self.retries += 1
            time.sleep(0.1)
        with self._lock:
            self.responses.append((user_id, amount, status, body))

    def _run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.started_at = time.perf_counter()
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda o: self._post(*o), self.orders))
        self.finished_at = time.perf_counter()

    def start(self) -> Burst:
        self._thread.start()
        return self

    def answered(self) -> int:
        with self._lock:
            return len(self.responses)

    def wait_answered(self, n: int, timeout: float = 30) -> None:
        wait_until(lambda: self.answered() >= n, timeout=timeout, interval=0.005, what=f"{n} POST /orders answers")

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the burst did not end within {timeout}s"

    def created(self) -> dict[int, dict]:
        """The orders answered 201, by id."""
        return {body["id"]: body for _, _, status, body in self.responses if status == 201}

    def statuses(self) -> dict:
        from collections import Counter

        return dict(Counter(status for _, _, status, _ in self.responses))


def probe(port: int, path: str) -> tuple[int | None, dict | None]:
    """(status, JSON body) of GET `path` on a service's own port; (None, None) if nothing answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.TransportError:
        return None, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None
