"""The WebSocket hub's fan-out, without sockets: who gets a result, and what a client
that falls behind costs the others (nothing)."""

from __future__ import annotations

import json

import pytest

from gozon.gateway.hub import Hub
from gozon.messages import PaymentResult

pytestmark = pytest.mark.anyio


def result(order_id: int, user_id: int) -> PaymentResult:
    return PaymentResult(order_id=order_id, user_id=user_id, amount=10, status="failed", reason="insufficient_funds")


async def test_every_connection_of_the_user_and_no_other_gets_the_frame() -> None:
    with Hub(queue_size=4) as hub:
        a1, a2, b = hub.register(1), hub.register(1), hub.register(2)
        assert hub.deliver(result(7, 1), "t") == 2
        for connection in (a1, a2):
            frame = json.loads((await connection.outgoing.get()).text)
            assert frame == {"type": "payment_result", "order_id": 7, "user_id": 1, "amount": 10, "status": "failed",
                             "order_status": "cancelled", "reason": "insufficient_funds"}
        assert len(b.outgoing) == 0


async def test_a_client_that_falls_behind_is_closed_and_the_others_are_served() -> None:
    with Hub(queue_size=2) as hub:
        slow, fast = hub.register(1), hub.register(1)
        for order_id in (1, 2):
            assert hub.deliver(result(order_id, 1), None) == 2
            await fast.outgoing.get()
        assert not slow.too_slow.is_set()
        assert hub.deliver(result(3, 1), None) == 1  # only the fast one had room
        assert slow.too_slow.is_set()
        assert not slow.outgoing.offer(hub_frame := (await fast.outgoing.get()))  # closed for good
        assert json.loads(hub_frame.text)["order_id"] == 3
        assert hub.deliver(result(4, 1), None) == 1
        assert not fast.too_slow.is_set()


async def test_unregistered_connections_get_nothing() -> None:
    with Hub(queue_size=2) as hub:
        connection = hub.register(5)
        hub.unregister(connection)
        assert hub.connections == 0
        assert hub.deliver(result(1, 5), None) == 0
