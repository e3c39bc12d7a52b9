"""Messages that must not be believed or must not stop anything, against the real
PostgreSQL and RabbitMQ: a result that does not match its order, a request for a known
order under other terms, a handler that keeps failing on one message, and a trace id
that is not one (spec §4, §5)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

import pytest

from gozon.amqp.broker import Broker
from gozon.amqp.consumer import ATTEMPTS, Consumer, Delivery
from gozon.amqp.topology import dead_letter_queue
from gozon.db import Database
from gozon.messages import ORDERS_QUEUE, PAYMENT_EVENTS, PAYMENTS_RESULTS_QUEUE, PaymentRequested, PaymentResult
from gozon.orders import handlers as orders_handlers
from gozon.orders import store as orders_store
from gozon.orders.schemas import CreateOrder
from gozon.payments import handlers as payments_handlers
from gozon.payments import store as payments_store
from tests.integration.helpers import (
    Counted,
    amqp_message,
    consumer_of,
    drain,
    eventually,
    publish,
    ready_count,
    running,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USER, OTHER = 5, 6


def consumer(broker: Broker, db: Database, queue: str, body: type, handle) -> Consumer:
    return consumer_of(broker, queue, body, handle, db)


def reason_of(letter) -> str:
    reason = (letter.headers or {}).get("x-error")
    return reason.decode() if isinstance(reason, bytes) else str(reason)


async def test_a_result_that_is_not_the_orders_is_dead_lettered_and_changes_nothing(
        orders_db: Database, broker: Broker) -> None:
    async with orders_db.acquire() as con:
        [order] = await orders_store.create_orders(con, [(CreateOrder(user_id=USER, amount=300), "t")])
    forged = [PaymentResult(order_id=order.id, user_id=OTHER, amount=300, status="failed", reason="insufficient_funds"),
              PaymentResult(order_id=order.id, user_id=USER, amount=1, status="failed", reason="insufficient_funds"),
              PaymentResult(order_id=order.id + 10**6, user_id=USER, amount=300, status="success")]
    real = PaymentResult(order_id=order.id, user_id=USER, amount=300, status="success")
    forged_ids = [uuid.uuid4() for _ in forged]
    await publish("", *(amqp_message(f, message_id=i) for f, i in zip(forged, forged_ids, strict=True)),
                  exchange=PAYMENT_EVENTS)

    handled = Counted(orders_handlers.payment_result(orders_db))
    async with running(consumer(broker, orders_db, PAYMENTS_RESULTS_QUEUE, PaymentResult, handled)):
        await eventually(lambda: _at_least(dead_letter_queue(PAYMENTS_RESULTS_QUEUE), 3),
                         what="the forged results dead-lettered")
        async with orders_db.acquire() as con:
            assert (await orders_store.get_order(con, order.id)).status == "new", "a forged result settled the order"
            assert await con.fetchval("SELECT count(*) FROM inbox") == 0, "a forged result was recorded as handled"
        await publish("", amqp_message(real, message_id=uuid.uuid4()), exchange=PAYMENT_EVENTS)
        await eventually(lambda: handled.reached(1), what="the real result handled")

    async with orders_db.acquire() as con:
        assert (await orders_store.get_order(con, order.id)).status == "finished"
    letters = await drain(dead_letter_queue(PAYMENTS_RESULTS_QUEUE))
    assert sorted(letter.message_id for letter in letters) == sorted(map(str, forged_ids))
    assert all("does not match" in reason_of(letter) for letter in letters), [reason_of(x) for x in letters]


async def _at_least(queue: str, count: int) -> bool:
    return await ready_count(queue) >= count


async def test_a_request_for_a_known_order_under_other_terms_is_dead_lettered_and_charges_nothing(
        payments_db: Database, broker: Broker) -> None:
    async with payments_db.acquire() as con:
        for user in (USER, OTHER):
            await payments_store.create_account(con, user)
            await payments_store.deposit(con, user, 1000)
    first = PaymentRequested(order_id=9, user_id=USER, amount=100)
    handled = Counted(payments_handlers.payment_requested(payments_db))
    async with running(consumer(broker, payments_db, ORDERS_QUEUE, PaymentRequested, handled)):
        await publish(ORDERS_QUEUE, amqp_message(first, message_id=uuid.uuid4()))
        await eventually(lambda: handled.reached(1), what="the first request charged")
        await publish(ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=9, user_id=OTHER, amount=100),
                                                 message_id=uuid.uuid4()),
                      amqp_message(PaymentRequested(order_id=9, user_id=USER, amount=999), message_id=uuid.uuid4()))
        await eventually(lambda: _at_least(dead_letter_queue(ORDERS_QUEUE), 2), what="both dead-lettered")
    async with payments_db.acquire() as con:
        balances = {r["user_id"]: r["balance"] for r in await con.fetch("SELECT user_id, balance FROM accounts")}
        assert balances == {USER: 900, OTHER: 1000}
        assert await con.fetchval("SELECT count(*) FROM outbox") == 1
    assert all("this request names" in reason_of(letter) for letter in await drain(dead_letter_queue(ORDERS_QUEUE)))


class Bug:
    """The product's handler, with a bug that one order's message always triggers."""

    def __init__(self, handle, order_id: int) -> None:
        self.handle, self.order_id, self.tries = handle, order_id, 0

    async def __call__(self, deliveries: Sequence[Delivery[PaymentRequested]]) -> None:
        if any(d.body.order_id == self.order_id for d in deliveries):
            self.tries += len(deliveries) == 1
            raise KeyError("a bug")
        await self.handle(deliveries)


async def test_a_message_that_keeps_failing_is_tried_a_few_times_then_dead_lettered_and_the_rest_flow(
        payments_db: Database, broker: Broker) -> None:
    async with payments_db.acquire() as con:
        await payments_store.create_account(con, USER)
        await payments_store.deposit(con, USER, 1000)
    bug = Bug(payments_handlers.payment_requested(payments_db), order_id=2)
    handled = Counted(bug)
    async with running(consumer(broker, payments_db, ORDERS_QUEUE, PaymentRequested, handled)):
        await publish(ORDERS_QUEUE, *(amqp_message(PaymentRequested(order_id=n, user_id=USER, amount=10),
                                                   message_id=uuid.uuid4()) for n in (1, 2, 3)))
        await eventually(lambda: handled.reached(2), what="the two good requests handled")
        await eventually(lambda: _at_least(dead_letter_queue(ORDERS_QUEUE), 1), what="the bad one dead-lettered")
        # The consumer goes on after it.
        await publish(ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=4, user_id=USER, amount=10),
                                                 message_id=uuid.uuid4()))
        await eventually(lambda: handled.reached(3), what="a later request handled")
    assert bug.tries == ATTEMPTS
    [letter] = await drain(dead_letter_queue(ORDERS_QUEUE))
    assert reason_of(letter) == "KeyError: 'a bug'"


@pytest.mark.parametrize("correlation_id", ["nul\x00byte", "x" * 129, "with space", ""])
async def test_a_trace_id_that_is_not_one_is_replaced_by_a_fresh_one(
        payments_db: Database, broker: Broker, correlation_id: str) -> None:
    async with payments_db.acquire() as con:
        await payments_store.create_account(con, USER)
        await payments_store.deposit(con, USER, 1000)
    handled = Counted(payments_handlers.payment_requested(payments_db))
    async with running(consumer(broker, payments_db, ORDERS_QUEUE, PaymentRequested, handled)):
        await publish(ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=1, user_id=USER, amount=10),
                                                 message_id=uuid.uuid4(), trace_id=correlation_id))
        await eventually(lambda: handled.reached(1), what="the request handled")
    async with payments_db.acquire() as con:
        stored = await con.fetchval("SELECT trace_id FROM outbox")
    assert re.fullmatch(r"[0-9a-f]{32}", stored), f"the result carries {stored!r}"
