"""What orders does with the messages it consumes: the payment results of a batch from
payments_results_queue settle their orders, once each, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from gozon.amqp.consumer import Delivery, Handler
from gozon.db import Database
from gozon.messages import PaymentResult
from gozon.orders import store

log = structlog.get_logger("gozon.orders")


def payment_result(db: Database) -> Handler[PaymentResult]:
    async def handle(deliveries: Sequence[Delivery[PaymentResult]]) -> None:
        async with db.acquire() as con:
            outcomes = await store.settle(con, [(d.message_id, d.body) for d in deliveries])
        for delivery in deliveries:
            result = delivery.body
            with structlog.contextvars.bound_contextvars(
                trace_id=delivery.trace_id, message_id=str(delivery.message_id), order_id=result.order_id,
                user_id=result.user_id,
            ):
                match outcomes[delivery.message_id]:
                    case "settled":
                        log.info("order status changed", status=result.order_status, reason=result.reason)
                    case "duplicate":
                        log.info("duplicate message skipped")
                    case _:
                        log.warning("payment result for an order that is not new, ignored")

    return handle
