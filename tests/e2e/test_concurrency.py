"""Concurrent orders of one user never overdraw, and the WebSocket tells each user, and
only that user, about each of their orders."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.sync.client import ClientConnection

from tests.e2e.money import check_money
from tests.e2e.shopper import Shopper, balance_of, funded_user, next_result, wait_settled
from tests.support import Stack


def _results(ws: ClientConnection, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    return [next_result(ws, timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)]


def _no_frame(ws: ClientConnection, timeout: float) -> None:
    """Nothing arrives for `timeout` seconds (recv times out)."""
    with pytest.raises(TimeoutError):
        frame = ws.recv(timeout=timeout)
        pytest.fail(f"unexpected frame: {frame}")


def test_30_concurrent_orders_of_100_against_1000_finish_exactly_10(running: Stack, client: httpx.Client) -> None:
    user_a = funded_user(client, 1000)
    a = Shopper(running.gateway_url, running.ws_url, user_a)
    b = Shopper(running.gateway_url, running.ws_url)  # another user, no orders of their own
    try:
        with a.connect() as a1, a.connect() as a2, b.connect() as b1:
            started = time.perf_counter()
            with ThreadPoolExecutor(30) as pool:
                responses = list(pool.map(
                    lambda _: client.post("/orders", json={"user_id": user_a, "amount": 100}), range(30)))
            posted = time.perf_counter()
            assert [r.status_code for r in responses] == [201] * 30, [r.text for r in responses if r.status_code != 201]
            ids = {r.json()["id"] for r in responses}
            assert len(ids) == 30
            assert all(r.json()["status"] == "new" for r in responses)

            frames_1 = _results(a1, 30, timeout=30)
            arrived = time.perf_counter()
            frames_2 = _results(a2, 30, timeout=10)
            # Each of A's connections gets one frame per order, no more (a fault-free run)…
            _no_frame(a1, 1.0)
            _no_frame(a2, 0.1)
            # …and B, whose connection is alive and subscribed, gets nothing of A's.
            _no_frame(b1, 0.1)
            b1.send("ping")
            assert json.loads(b1.recv(timeout=5)) == {"type": "pong"}

        for frames in (frames_1, frames_2):
            assert {f["order_id"] for f in frames} == ids and len(frames) == 30
            assert all(f["user_id"] == user_a and f["amount"] == 100 for f in frames)
            assert Counter((f["status"], f["order_status"], f["reason"]) for f in frames) == {
                ("success", "finished", None): 10,
                ("failed", "cancelled", "insufficient_funds"): 20,
            }
        assert {f["order_id"]: f["status"] for f in frames_1} == {f["order_id"]: f["status"] for f in frames_2}

        orders = wait_settled(client, [user_a], ids, timeout=30)[user_a]
        assert {o["id"] for o in orders} == ids
        assert Counter((o["status"], o.get("reason")) for o in orders) == {
            ("finished", None): 10, ("cancelled", "insufficient_funds"): 20}
        assert {o["id"]: o["status"] for o in orders} == {
            f["order_id"]: f["order_status"] for f in frames_1}
        assert balance_of(client, user_a) == 0
        check_money(client, {user_a: 1000}, {user_a: orders})
        print(f"\n30 concurrent POST /orders: answered in {(posted - started) * 1000:.0f} ms, "
              f"all 30 WS results after {(arrived - started) * 1000:.0f} ms")
    finally:
        a.http.close()
        b.http.close()


def test_each_user_sees_only_their_own_results(running: Stack, client: httpx.Client) -> None:
    """Two users order at the same time; each connection sees exactly its user's orders."""
    users = [funded_user(client, 10**6) for _ in range(2)]
    shoppers = [Shopper(running.gateway_url, running.ws_url, u) for u in users]
    try:
        with shoppers[0].connect() as ws_0, shoppers[1].connect() as ws_1:
            with ThreadPoolExecutor(20) as pool:
                responses = list(pool.map(
                    lambda i: client.post("/orders", json={"user_id": users[i % 2], "amount": 7 + i}), range(20)))
            assert all(r.status_code == 201 for r in responses)
            mine = [{r.json()["id"] for r in responses if r.json()["user_id"] == u} for u in users]
            for ws, ids, user in ((ws_0, mine[0], users[0]), (ws_1, mine[1], users[1])):
                frames = _results(ws, 10, timeout=30)
                assert {f["order_id"] for f in frames} == ids
                assert {f["user_id"] for f in frames} == {user}
                _no_frame(ws, 0.5)
    finally:
        for s in shoppers:
            s.http.close()
