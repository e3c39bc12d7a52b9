"""POST /orders with an Idempotency-Key: a retry gets the same order and creates nothing."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.money import check_money
from tests.e2e.shopper import balance_of, funded_user, orders_of, wait_settled


def _post(http: httpx.Client, user: int, amount: int, key: str) -> httpx.Response:
    return http.post("/orders", json={"user_id": user, "amount": amount}, headers={"Idempotency-Key": key})


def test_retry_with_the_same_key_and_body_gets_the_same_order(client: httpx.Client) -> None:
    user = funded_user(client, 1000)
    key = f"retry-{uuid.uuid4()}"
    first = _post(client, user, 300, key)
    second = _post(client, user, 300, key)
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["user_id"] == user and second.json()["amount"] == 300
    assert [o["id"] for o in orders_of(client, user)] == [first.json()["id"]]
    # Once paid, a third retry still answers with that order, and charges nothing more.
    wait_settled(client, [user], {first.json()["id"]}, timeout=30)
    third = _post(client, user, 300, key)
    assert third.status_code == 201 and third.json()["id"] == first.json()["id"], third.text
    assert len(orders_of(client, user)) == 1
    assert balance_of(client, user) == 700


def test_same_key_with_another_body_is_refused(client: httpx.Client) -> None:
    user = funded_user(client, 1000)
    key = f"reused-{uuid.uuid4()}"
    first = _post(client, user, 300, key)
    assert first.status_code == 201, first.text
    reused = _post(client, user, 301, key)
    assert reused.status_code == 422, reused.text
    assert reused.headers["content-type"].startswith("application/json")
    assert reused.json()["error"] == "idempotency_key_reused", reused.json()
    assert [o["id"] for o in orders_of(client, user)] == [first.json()["id"]]
    orders = wait_settled(client, [user], {first.json()["id"]}, timeout=30)
    check_money(client, {user: 1000}, orders)


def test_key_is_scoped_to_the_user(client: httpx.Client) -> None:
    users = [funded_user(client, 1000) for _ in range(2)]
    key = f"shared-{uuid.uuid4()}"
    placed = [_post(client, user, 100, key) for user in users]
    assert [p.status_code for p in placed] == [201, 201], [p.text for p in placed]
    assert placed[0].json()["id"] != placed[1].json()["id"]
    assert [p.json()["user_id"] for p in placed] == users


def test_10_concurrent_requests_with_one_key_create_one_order(client: httpx.Client) -> None:
    user = funded_user(client, 1000)
    key = f"concurrent-{uuid.uuid4()}"
    start = threading.Barrier(10, timeout=10)

    def send(_: int) -> httpx.Response:
        start.wait()
        return _post(client, user, 250, key)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(send, range(10)))
    print(f"\n10 concurrent requests with one Idempotency-Key: {dict(Counter(r.status_code for r in responses))}")
    orders = orders_of(client, user)
    assert len(orders) == 1, orders
    order_id = orders[0]["id"]
    for response in responses:
        assert response.status_code in (201, 409), response.text
        if response.status_code == 201:
            assert response.json()["id"] == order_id
        else:
            assert response.json()["error"] == "request_in_progress", response.json()
    assert any(r.status_code == 201 for r in responses)
    settled = wait_settled(client, [user], {order_id}, timeout=30)
    assert settled[user][0]["status"] == "finished"
    assert balance_of(client, user) == 750
    check_money(client, {user: 1000}, settled)
