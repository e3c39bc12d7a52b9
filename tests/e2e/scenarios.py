"""The original's scenarios as a shopper plays them, for any test that needs one played
through a gateway: the e2e stack's, the compose emulation's, or one just restarted."""

from __future__ import annotations

from tests.e2e.shopper import Shopper, next_result


def paid_order(shopper: Shopper, *, timeout: float = 15) -> dict:
    """Scenario 1 for a new user: account, deposit 1000, order 200 — the WebSocket says
    success/finished, the order is finished and the balance is 800. The order, finished."""
    assert shopper.create_account().status_code == 201
    assert shopper.deposit(1000).json()["balance"] == 1000
    with shopper.connect() as ws:
        order = shopper.order(200)
        assert order["status"] == "new"
        frame = next_result(ws, timeout=timeout)
    assert frame == {"type": "payment_result", "order_id": order["id"], "user_id": shopper.user_id,
                     "amount": 200, "status": "success", "order_status": "finished", "reason": None}
    finished = shopper.wait_terminal({order["id"]})[order["id"]]
    assert finished["status"] == "finished"
    assert shopper.balance() == 800
    return finished
