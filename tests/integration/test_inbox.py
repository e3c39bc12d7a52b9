"""The payments inbox against the real PostgreSQL and RabbitMQ (spec §5, Inbox): a payment
request delivered twice is charged once, an order re-requested under a new message id is
not charged again, and concurrent orders of one user never overdraw."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from gozon.amqp.broker import Broker
from gozon.amqp.consumer import Consumer
from gozon.amqp.topology import dead_letter_queue
from gozon.db import Database
from gozon.messages import ORDERS_QUEUE, PaymentRequested, PaymentResult
from gozon.payments import handlers as payments_handlers
from gozon.payments import store as payments_store
from tests.settings import TEST_SETTINGS
from tests.integration.helpers import (
    Counted,
    amqp_message,
    consumer_count,
    consumer_of,
    eventually,
    publish,
    ready_broker,
    ready_count,
    ready_database,
    running,
    stays_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USER = 42
RESULT = msgspec.json.Decoder(PaymentResult)


def payments_consumer(broker: Broker, db: Database, *, workers: int = TEST_SETTINGS.inbox_workers) -> tuple[Consumer, Counted]:
    """The payments process's inbox consumer, as supervisors/payments.py builds it, and
    a count of the deliveries its handler finished."""
    handled = Counted(payments_handlers.payment_requested(db))
    return consumer_of(broker, ORDERS_QUEUE, PaymentRequested, handled, db, workers), handled


async def open_account(db: Database, user_id: int, amount: int) -> None:
    async with db.acquire() as con:
        await payments_store.create_account(con, user_id)
        await payments_store.deposit(con, user_id, amount)


async def ledger_state(db: Database, user_id: int) -> dict:
    """What the payments database says about a user, in one snapshot."""
    async with db.acquire() as con, con.transaction(isolation="repeatable_read"):
        return {
            "balance": (await payments_store.balance(con, user_id)).balance,
            "debits": [dict(r) for r in await con.fetch(
                "SELECT l.order_id, l.amount FROM ledger l JOIN accounts a ON a.id = l.account_id"
                " WHERE a.user_id = $1 AND l.kind = 'debit' ORDER BY l.order_id", user_id)],
            "payments": [dict(r) for r in await con.fetch(
                "SELECT order_id, amount, status, reason FROM payments WHERE user_id = $1 ORDER BY order_id",
                user_id)],
            "results": [RESULT.decode(r["payload"]) for r in await con.fetch(
                "SELECT payload::text AS payload FROM outbox ORDER BY id")],
            "inbox": {r["message_id"] for r in await con.fetch("SELECT message_id FROM inbox")},
        }


async def inbox_has(db: Database, message_id: uuid.UUID) -> bool:
    async with db.acquire() as con:
        return bool(await con.fetchval("SELECT true FROM inbox WHERE message_id = $1", message_id))


async def test_a_request_delivered_twice_is_charged_once(payments_db: Database, broker: Broker) -> None:
    await open_account(payments_db, USER, 1000)
    message_id = uuid.uuid4()
    request = PaymentRequested(order_id=1, user_id=USER, amount=100)
    # The same message twice, as a relay that lost a confirm would re-publish it.
    await publish(ORDERS_QUEUE, amqp_message(request, message_id=message_id),
                  amqp_message(request, message_id=message_id))
    assert await ready_count(ORDERS_QUEUE) == 2

    consumer, handled = payments_consumer(broker, payments_db)
    async with running(consumer):
        await eventually(lambda: handled.reached(2), what="both copies handled")
    await stays_empty(ORDERS_QUEUE)  # and both acked

    state = await ledger_state(payments_db, USER)
    assert state["balance"] == 900, "charged twice" if state["balance"] == 800 else state
    assert state["debits"] == [{"order_id": 1, "amount": 100}]
    assert state["payments"] == [{"order_id": 1, "amount": 100, "status": "success", "reason": None}]
    assert state["results"] == [PaymentResult(order_id=1, user_id=USER, amount=100, status="success")]
    assert state["inbox"] == {message_id}
    assert await ready_count(dead_letter_queue(ORDERS_QUEUE)) == 0


async def test_an_order_requested_again_under_a_new_message_id_is_not_charged_again(
        payments_db: Database, broker: Broker) -> None:
    await open_account(payments_db, USER, 1000)
    first, second = uuid.uuid4(), uuid.uuid4()
    request = PaymentRequested(order_id=7, user_id=USER, amount=250)

    consumer, handled = payments_consumer(broker, payments_db)
    async with running(consumer):
        await publish(ORDERS_QUEUE, amqp_message(request, message_id=first))
        await eventually(lambda: handled.reached(1), what="the first request handled")
        await publish(ORDERS_QUEUE, amqp_message(request, message_id=second))
        await eventually(lambda: handled.reached(2), what="the second request handled")
    await stays_empty(ORDERS_QUEUE)
    assert await inbox_has(payments_db, second), "the re-request's message id was not recorded"

    state = await ledger_state(payments_db, USER)
    assert state["balance"] == 750
    assert state["debits"] == [{"order_id": 7, "amount": 250}]
    assert state["payments"] == [{"order_id": 7, "amount": 250, "status": "success", "reason": None}]
    assert state["results"] == [PaymentResult(order_id=7, user_id=USER, amount=250, status="success")], \
        "the re-request produced a second payment result"


async def test_concurrent_orders_of_one_user_never_overdraw(payments_db: Database, broker: Broker) -> None:
    await open_account(payments_db, USER, 1000)
    # Two payments replicas: two pools, two connections, 8 workers each.
    async with (
        ready_database(TEST_SETTINGS.payments_db, payments_store.MIGRATIONS) as other_db,
        ready_broker() as other_broker,
    ):
        (a, handled_a), (b, handled_b) = payments_consumer(broker, payments_db), payments_consumer(other_broker, other_db)
        async with running(a, b):
            async def both_consuming() -> bool:
                return await consumer_count(ORDERS_QUEUE) == 2

            await eventually(both_consuming, what="both consumers on orders_queue")
            await publish(ORDERS_QUEUE, *(
                amqp_message(PaymentRequested(order_id=n, user_id=USER, amount=100), message_id=uuid.uuid4())
                for n in range(1, 31)))

            async def all_handled() -> bool:
                return handled_a.done + handled_b.done >= 30

            await eventually(all_handled, what="30 payment requests handled")
        await stays_empty(ORDERS_QUEUE)
    print(f"requests handled by consumer A: {handled_a.done}, B: {handled_b.done}")

    state = await ledger_state(payments_db, USER)
    succeeded = [p for p in state["payments"] if p["status"] == "success"]
    refused = [p for p in state["payments"] if p["status"] == "failed"]
    assert state["balance"] == 0
    assert len(succeeded) == 10, f"{len(succeeded)} orders of 100 were paid from a balance of 1000"
    assert len(refused) == 20 and {p["reason"] for p in refused} == {"insufficient_funds"}
    # Exactly one debit per paid order, none for a refused one.
    assert [d["order_id"] for d in state["debits"]] == [p["order_id"] for p in succeeded]
    assert sum(d["amount"] for d in state["debits"]) == 1000
    assert sorted((r.order_id, r.status) for r in state["results"]) == sorted(
        (p["order_id"], p["status"]) for p in state["payments"])

