"""What payments does with the messages it consumes: the payment requests of a batch
from orders_queue are charged once each, in one transaction, their results into the
outbox."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from gozon.amqp.consumer import Delivery, Handler
from gozon.db import Database
from gozon.messages import PaymentRequested, PaymentResult
from gozon.payments import store

log = structlog.get_logger("gozon.payments")


def payment_requested(db: Database) -> Handler[PaymentRequested]:
    async def handle(deliveries: Sequence[Delivery[PaymentRequested]]) -> None:
        async with db.acquire() as con:
            outcomes = await store.pay(con, [store.Charge(d.message_id, d.body, d.trace_id) for d in deliveries])
        for delivery in deliveries:
            request, outcome = delivery.body, outcomes[delivery.message_id]
            with structlog.contextvars.bound_contextvars(
                trace_id=delivery.trace_id, message_id=str(delivery.message_id), order_id=request.order_id,
                user_id=request.user_id,
            ):
                log.info("payment request received", amount=request.amount, redelivered=delivery.redelivered)
                if isinstance(outcome, PaymentResult) and outcome.status == "success":
                    log.info("payment debited", amount=request.amount)
                elif isinstance(outcome, PaymentResult):
                    log.info("payment refused", reason=outcome.reason)
                elif outcome == "duplicate":
                    log.info("duplicate message skipped")
                else:
                    log.warning("order was already paid or refused, not charged again")

    return handle
