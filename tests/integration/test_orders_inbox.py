"""The orders inbox against the real PostgreSQL and RabbitMQ (spec §2, §5): a payment
result moves its order out of `new` once — a duplicate or a late contrary result never
changes it again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest

from gozon.amqp.broker import Broker
from gozon.amqp.consumer import Consumer
from gozon.db import Database
from gozon.messages import PAYMENTS_RESULTS_QUEUE, PAYMENT_EVENTS, PaymentResult
from gozon.orders import handlers as orders_handlers
from gozon.orders import store as orders_store
from gozon.orders.schemas import CreateOrder, Order
from tests.integration.helpers import (
    Counted,
    amqp_message,
    consumer_of,
    eventually,
    publish,
    running,
    stays_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USER = 3


@pytest.fixture
async def status_history(orders_db: Database) -> AsyncIterator[None]:
    """Test instrumentation (in the test database only): a row for every change of an
    order's status, so that "changed once" can be checked, not just the final state."""
    async with orders_db.acquire() as con:
        await con.execute("""
            CREATE TABLE IF NOT EXISTS test_status_history (
                order_id bigint, old_status text, new_status text, reason text);
            TRUNCATE test_status_history;
            CREATE OR REPLACE FUNCTION test_record_status() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.status IS DISTINCT FROM OLD.status OR NEW.reason IS DISTINCT FROM OLD.reason THEN
                    INSERT INTO test_status_history VALUES (OLD.id, OLD.status, NEW.status, NEW.reason);
                END IF;
                RETURN NULL;
            END $$;
            CREATE OR REPLACE TRIGGER test_record_status AFTER UPDATE ON orders
                FOR EACH ROW EXECUTE FUNCTION test_record_status();
        """)
    yield
    async with orders_db.acquire() as con:
        await con.execute("DROP TRIGGER IF EXISTS test_record_status ON orders;"
                          " DROP FUNCTION IF EXISTS test_record_status(); DROP TABLE IF EXISTS test_status_history")


async def history(db: Database, order_id: int) -> list[tuple]:
    async with db.acquire() as con:
        return [tuple(r) for r in await con.fetch(
            "SELECT old_status, new_status, reason FROM test_status_history WHERE order_id = $1", order_id)]


async def new_order(db: Database, amount: int = 200) -> Order:
    async with db.acquire() as con:
        order, created = await orders_store.create_order(con, CreateOrder(user_id=USER, amount=amount),
                                                         trace_id=f"trace-{uuid.uuid4()}", idempotency_key=None)
    assert created and order.status == "new"
    return order


async def get(db: Database, order_id: int) -> Order:
    async with db.acquire() as con:
        order = await orders_store.get_order(con, order_id)
    assert order is not None
    return order


async def in_inbox(db: Database, message_id: uuid.UUID) -> bool:
    async with db.acquire() as con:
        return bool(await con.fetchval("SELECT true FROM inbox WHERE message_id = $1", message_id))


def result(order: Order, status: str, reason: str | None = None) -> PaymentResult:
    return PaymentResult(order_id=order.id, user_id=order.user_id, amount=order.amount,
                         status=status, reason=reason)  # type: ignore[arg-type]


def orders_consumer(broker: Broker, db: Database) -> tuple[Consumer, Counted]:
    """The orders process's inbox consumer, as supervisors/orders.py builds it, and a
    count of the deliveries its handler finished."""
    handled = Counted(orders_handlers.payment_result(db))
    return consumer_of(broker, PAYMENTS_RESULTS_QUEUE, PaymentResult, handled, db), handled


async def deliver(*messages) -> None:
    """Publish payment results the way payments does: to the fanout exchange."""
    await publish("", *messages, exchange=PAYMENT_EVENTS)


async def test_a_duplicate_and_a_late_failure_finish_the_order_once(
        orders_db: Database, broker: Broker, status_history: None) -> None:
    order = await new_order(orders_db)
    success_id, late_id = uuid.uuid4(), uuid.uuid4()
    consumer, handled = orders_consumer(broker, orders_db)
    async with running(consumer):
        success = amqp_message(result(order, "success"), message_id=success_id)
        await deliver(success, amqp_message(result(order, "success"), message_id=success_id))
        await eventually(lambda: handled.reached(2), what="the payment result and its duplicate handled")
        finished = await get(orders_db, order.id)
        assert (finished.status, finished.reason) == ("finished", None)

        # A contrary result for the same order arrives late, under its own message id.
        await deliver(amqp_message(result(order, "failed", "insufficient_funds"), message_id=late_id))
        await eventually(lambda: handled.reached(3), what="the late result handled")
    await stays_empty(PAYMENTS_RESULTS_QUEUE)  # all three acked
    assert await in_inbox(orders_db, success_id) and await in_inbox(orders_db, late_id)

    after = await get(orders_db, order.id)
    assert (after.status, after.reason) == ("finished", None), "a late 'failed' flipped a finished order"
    assert await history(orders_db, order.id) == [("new", "finished", None)]


async def test_a_late_success_does_not_revive_a_cancelled_order(
        orders_db: Database, broker: Broker, status_history: None) -> None:
    order = await new_order(orders_db)
    failed_id, late_id = uuid.uuid4(), uuid.uuid4()
    consumer, handled = orders_consumer(broker, orders_db)
    async with running(consumer):
        await deliver(amqp_message(result(order, "failed", "insufficient_funds"), message_id=failed_id))
        await eventually(lambda: handled.reached(1), what="the refusal handled")
        await deliver(amqp_message(result(order, "success"), message_id=late_id),
                      amqp_message(result(order, "failed", "insufficient_funds"), message_id=failed_id))
        await eventually(lambda: handled.reached(3), what="the late success and the duplicate handled")
    await stays_empty(PAYMENTS_RESULTS_QUEUE)

    after = await get(orders_db, order.id)
    assert (after.status, after.reason) == ("cancelled", "insufficient_funds")
    assert await history(orders_db, order.id) == [("new", "cancelled", "insufficient_funds")]


async def test_racing_results_settle_each_order_exactly_once(orders_db: Database, status_history: None) -> None:
    """A success and a refusal for the same order, committed concurrently (and each
    delivered twice): one of them wins, once; the order never moves again."""
    orders = [await new_order(orders_db, amount=10 + n) for n in range(30)]
    messages = []
    for order in orders:
        messages += [(uuid.uuid4(), result(order, "success")),
                     (uuid.uuid4(), result(order, "failed", "insufficient_funds"))]

    async def settle(message_id: uuid.UUID, payment: PaymentResult) -> None:
        async with orders_db.acquire() as con:
            await orders_store.settle(con, [(message_id, payment)])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for message_id, payment in messages * 2:
                tg.start_soon(settle, message_id, payment)

    async with orders_db.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM inbox") == len(messages)
    for order in orders:
        final = await get(orders_db, order.id)
        changes = await history(orders_db, order.id)
        assert len(changes) == 1 and changes[0][0] == "new", f"order {order.id} changed status {changes}"
        assert (final.status, final.reason) == changes[0][1:]
        assert (final.status, final.reason) in {("finished", None), ("cancelled", "insufficient_funds")}
