"""The original's scenarios through the gateway, with the result arriving on the WebSocket."""

from __future__ import annotations

import statistics
import time

from tests.e2e.scenarios import paid_order
from tests.e2e.shopper import Shopper, next_result


def test_scenario_1_paid_order_is_green_finished_and_debited(shopper: Shopper) -> None:
    """Deposit 1000, order 200: success on the WebSocket, the order finished, 800 left
    (the steps and their checks: `paid_order`, which the trace and compose tests replay)."""
    paid_order(shopper)


def test_scenario_2_refused_order_is_red_cancelled_and_balance_unchanged(shopper: Shopper) -> None:
    shopper.create_account()
    shopper.deposit(100)
    with shopper.connect() as ws:
        order = shopper.order(500)
        frame = next_result(ws)
    assert (frame["order_id"], frame["status"], frame["order_status"], frame["reason"]) == (
        order["id"], "failed", "cancelled", "insufficient_funds")
    settled = shopper.wait_terminal({order["id"]})[order["id"]]
    assert (settled["status"], settled["reason"]) == ("cancelled", "insufficient_funds")
    assert shopper.balance() == 100


def test_order_without_account_is_cancelled_account_not_found(shopper: Shopper) -> None:
    with shopper.connect() as ws:
        order = shopper.order(50)
        frame = next_result(ws)
    assert (frame["status"], frame["reason"]) == ("failed", "account_not_found")
    # Orders and the gateway consume the result side by side: the frame may come first.
    assert shopper.wait_terminal({order["id"]})[order["id"]]["status"] == "cancelled"


def test_latency_from_order_to_websocket_result(shopper: Shopper) -> None:
    """Prints (does not assert) POST /orders → WebSocket frame on an idle system."""
    shopper.create_account()
    shopper.deposit(10**6)
    samples = []
    with shopper.connect() as ws:
        for _ in range(20):
            started = time.perf_counter()
            order = shopper.order(1)
            frame = next_result(ws)
            samples.append((time.perf_counter() - started) * 1000)
            assert frame["order_id"] == order["id"]
    samples.sort()
    print(f"\nPOST /orders → WS result, {len(samples)} single orders: median {statistics.median(samples):.1f} ms, "
          f"p90 {samples[int(len(samples) * 0.9) - 1]:.1f} ms, max {samples[-1]:.1f} ms")
