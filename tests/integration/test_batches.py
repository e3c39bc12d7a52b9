"""Batches (group commit) against the real PostgreSQL and RabbitMQ: many messages in one
transaction change exactly what they would change one by one — a balance is spent first
come, first served; a duplicate or a re-request in the same batch is charged once — and
one message that fails does not fail the messages batched with it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec
import pytest

from gozon.amqp.broker import Broker
from gozon.amqp.consumer import Delivery
from gozon.amqp.topology import dead_letter_queue
from gozon.db import Database
from gozon.errors import Poison
from gozon.messages import ORDERS_QUEUE, PaymentRequested, PaymentResult
from gozon.payments import handlers as payments_handlers
from gozon.payments import store as payments_store
from tests.integration.helpers import (
    Counted,
    amqp_message,
    consumer_of,
    eventually,
    publish,
    ready_count,
    running,
    stays_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USER = 77


async def open_account(db: Database, amount: int) -> None:
    async with db.acquire() as con:
        await payments_store.create_account(con, USER)
        await payments_store.deposit(con, USER, amount)


async def balance_and_debits(db: Database) -> tuple[int, list[int]]:
    async with db.acquire() as con:
        balance = (await payments_store.balance(con, USER)).balance
        debits = [r["order_id"] for r in await con.fetch(
            "SELECT order_id FROM ledger WHERE kind = 'debit' ORDER BY order_id")]
    return balance, debits


def charge(order_id: int, amount: int, message_id: uuid.UUID | None = None) -> payments_store.Charge:
    return payments_store.Charge(message_id or uuid.uuid4(),
                                 PaymentRequested(order_id=order_id, user_id=USER, amount=amount), "t")


async def test_one_transaction_spends_a_balance_first_come_first_served(payments_db: Database) -> None:
    await open_account(payments_db, 250)
    charges = [charge(1, 100), charge(2, 200), charge(3, 150), charge(4, 50), charge(5, 1, None)]
    charges[4] = payments_store.Charge(charges[4].message_id,
                                       PaymentRequested(order_id=5, user_id=USER + 1, amount=1), "t")
    async with payments_db.acquire() as con:
        outcomes = await payments_store.pay(con, charges)
    results = [outcomes[c.message_id] for c in charges]
    assert [(r.status, r.reason) for r in results] == [
        ("success", None),                # 250 → 150
        ("failed", "insufficient_funds"),  # 200 > 150
        ("success", None),                # 150 → 0
        ("failed", "insufficient_funds"),  # 50 > 0
        ("failed", "account_not_found"),  # another user, without an account
    ]
    assert await balance_and_debits(payments_db) == (0, [1, 3])
    async with payments_db.acquire() as con:
        queued = [msgspec.json.decode(r["payload"], type=PaymentResult) for r in await con.fetch(
            "SELECT payload::text AS payload FROM outbox ORDER BY id")]
    assert sorted(queued, key=lambda r: r.order_id) == results, "each charge puts its result into the outbox"


async def test_a_duplicate_and_a_re_request_in_the_same_batch_are_charged_once(payments_db: Database) -> None:
    await open_account(payments_db, 1000)
    twice = uuid.uuid4()
    charges = [charge(1, 100, twice), charge(1, 100, twice), charge(1, 100), charge(2, 10)]
    async with payments_db.acquire() as con:
        outcomes = await payments_store.pay(con, charges)
    assert outcomes[twice].status == "success"
    assert outcomes[charges[2].message_id] == "charged_before"
    assert await balance_and_debits(payments_db) == (890, [1, 2])
    async with payments_db.acquire() as con:
        again = await payments_store.pay(con, [charge(2, 10, charges[3].message_id)])
    assert again == {charges[3].message_id: "duplicate"}
    assert await balance_and_debits(payments_db) == (890, [1, 2])


class FailsFor:
    """The product's handler, except that a batch holding order `order_id` fails as if
    that message could never be handled: the consumer must isolate it."""

    def __init__(self, handle, order_id: int) -> None:
        self.handle = handle
        self.order_id = order_id

    async def __call__(self, deliveries: Sequence[Delivery[PaymentRequested]]) -> None:
        if any(d.body.order_id == self.order_id for d in deliveries):
            raise Poison(f"order {self.order_id} is cursed")
        await self.handle(deliveries)


async def test_one_failing_message_does_not_fail_those_batched_with_it(payments_db: Database, broker: Broker) -> None:
    await open_account(payments_db, 10_000)
    requests = [PaymentRequested(order_id=n, user_id=USER, amount=10) for n in range(1, 41)]
    # All queued before the consumer starts, so its workers take them in batches.
    await publish(ORDERS_QUEUE, *(amqp_message(r, message_id=uuid.uuid4()) for r in requests))

    handled = Counted(FailsFor(payments_handlers.payment_requested(payments_db), order_id=13))
    consumer = consumer_of(broker, ORDERS_QUEUE, PaymentRequested, handled, payments_db)
    async with running(consumer):
        await eventually(lambda: handled.reached(39), what="the 39 good requests handled")
        await eventually(lambda: ready_count(dead_letter_queue(ORDERS_QUEUE)), what="the cursed one dead-lettered")
    await stays_empty(ORDERS_QUEUE)

    assert max(handled.batches) > 1, f"the requests were never batched: {handled.batches}"
    balance, debits = await balance_and_debits(payments_db)
    assert debits == [n for n in range(1, 41) if n != 13]
    assert balance == 10_000 - 39 * 10
    assert await ready_count(dead_letter_queue(ORDERS_QUEUE)) == 1
