"""Payments' inbox: payment requests from orders_queue are charged once each."""

from __future__ import annotations

import msgspec
import structlog

from gozon.amqp.consumer import Delivery
from gozon.db import Database
from gozon.messages import PaymentRequested
from gozon.payments import store

log = structlog.get_logger("gozon.payments")

decoder = msgspec.json.Decoder(PaymentRequested)


def handler(db: Database):
    async def handle(delivery: Delivery) -> None:
        request: PaymentRequested = delivery.body  # type: ignore[assignment]
        with structlog.contextvars.bound_contextvars(order_id=request.order_id, user_id=request.user_id):
            log.info("payment request received", amount=request.amount, redelivered=delivery.redelivered)
            async with db.acquire() as con:
                result = await store.pay(con, delivery.message_id, request, delivery.trace_id)
                # Logged as soon as it committed, before the connection's release (a round
                # trip) gives the relay, woken by that commit, time to log its publish first.
                if result is not None:
                    if result.status == "success":
                        log.info("payment debited", amount=request.amount)
                    else:
                        log.info("payment refused", reason=result.reason)

    return handle
