"""Orders' inbox: payment results from payments_results_queue settle their orders."""

from __future__ import annotations

import msgspec
import structlog

from gozon.amqp.consumer import Delivery
from gozon.db import Database
from gozon.messages import PaymentResult
from gozon.orders import store

decoder = msgspec.json.Decoder(PaymentResult)


def handler(db: Database):
    async def handle(delivery: Delivery) -> None:
        result: PaymentResult = delivery.body  # type: ignore[assignment]
        with structlog.contextvars.bound_contextvars(order_id=result.order_id, user_id=result.user_id):
            async with db.acquire() as con:
                await store.settle(con, delivery.message_id, result)

    return handle
