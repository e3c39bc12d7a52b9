"""Poison messages on orders_queue (spec §4): a body or message id no retry can make
valid is dead-lettered to orders_queue.dlq with its reason, acked, changes nothing, and
the consumer goes on with the next message."""

from __future__ import annotations

import uuid

import pytest

from gozon.amqp.broker import Broker
from gozon.amqp.topology import dead_letter_queue
from gozon.db import Database
from gozon.messages import ORDERS_QUEUE, PaymentRequested
from gozon.payments import handlers as payments_handlers
from gozon.payments import store as payments_store
from tests.integration.helpers import (
    Counted,
    amqp_message,
    consumer_of,
    drain,
    eventually,
    publish,
    publish_without_message_id,
    ready_count,
    running,
    stays_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USER = 5
DLQ = dead_letter_queue(ORDERS_QUEUE)
VALID = PaymentRequested(order_id=1, user_id=USER, amount=100)

# (poison body or None for a valid one, message id or None, what x-error must mention)
POISON = {
    "malformed JSON": (b'{"type": "payment_requested", "order_id": 1,, "user_id": 5}', "uuid", "malformed"),
    "truncated JSON": (b'{"type": "payment_requested", "order_id": 1, "user_id": 5, "amount": 1', "uuid",
                       "truncated"),
    "amount as a string": (b'{"type": "payment_requested", "order_id": 1, "user_id": 5, "amount": "100"}', "uuid",
                           "$.amount"),
    "negative amount": (b'{"type": "payment_requested", "order_id": 1, "user_id": 5, "amount": -100}', "uuid",
                        "$.amount"),
    "missing field": (b'{"type": "payment_requested", "order_id": 1, "user_id": 5}', "uuid", "amount"),
    "wrong message type": (b'{"type": "payment_result", "order_id": 1, "user_id": 5, "amount": 100, "status": "ok"}',
                           "uuid", "payment_result"),
    "missing message_id": (None, None, "message_id"),
    "message_id not a UUID": (None, "order-1", "message_id"),
}


async def snapshot(db: Database) -> dict:
    async with db.acquire() as con:
        return {
            "balance": (await payments_store.balance(con, USER)).balance,
            "payments": await con.fetchval("SELECT count(*) FROM payments"),
            "debits": await con.fetchval("SELECT count(*) FROM ledger WHERE kind = 'debit'"),
            "outbox": await con.fetchval("SELECT count(*) FROM outbox"),
            "inbox": await con.fetchval("SELECT count(*) FROM inbox"),
        }


@pytest.mark.parametrize("case", list(POISON))
async def test_poison_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
        case: str, payments_db: Database, broker: Broker) -> None:
    body, id_kind, reason_mentions = POISON[case]
    async with payments_db.acquire() as con:
        await payments_store.create_account(con, USER)
        await payments_store.deposit(con, USER, 1000)
    before = await snapshot(payments_db)
    poison_id = str(uuid.uuid4()) if id_kind == "uuid" else id_kind
    poison = amqp_message(VALID, message_id=poison_id, body=body, trace_id="poison-trace")

    handled = Counted(payments_handlers.payment_requested(payments_db))
    consumer = consumer_of(broker, ORDERS_QUEUE, PaymentRequested, handled, payments_db)
    async with running(consumer):
        if poison_id is None:
            await publish_without_message_id(ORDERS_QUEUE, poison.body, correlation_id="poison-trace",
                                             type_="payment_requested")
        else:
            await publish(ORDERS_QUEUE, poison)
        await eventually(lambda: ready_count(DLQ), what=f"the {case} message in {DLQ}")
        assert handled.done == 0, "a poison message reached the payments handler"
        assert await snapshot(payments_db) == before, "a poison message changed the payments database"

        # The consumer is still alive and well: the next (valid) message is charged.
        valid_id = uuid.uuid4()
        await publish(ORDERS_QUEUE, amqp_message(VALID, message_id=valid_id))

        await eventually(lambda: handled.reached(1), what="the valid message after the poison handled")
    await stays_empty(ORDERS_QUEUE)  # the poison's original and the valid one were acked

    after = await snapshot(payments_db)
    assert after == {"balance": 900, "payments": 1, "debits": 1, "outbox": 1, "inbox": 1}

    dead = await drain(DLQ)
    assert len(dead) == 1, f"expected the one poison message in {DLQ}, got {len(dead)}"
    [letter] = dead
    assert letter.body == poison.body, "the dead letter does not carry the original body"
    if poison_id is not None:
        # (Without one, aio-pika stamps a random id on the dead letter: nothing to compare.)
        assert letter.message_id == poison_id
    assert letter.correlation_id == "poison-trace"
    headers = letter.headers or {}
    reason = headers.get("x-error")
    if isinstance(reason, bytes):
        reason = reason.decode()
    assert isinstance(reason, str) and reason, f"no x-error header stating the reason: {headers}"
    assert reason_mentions in reason, f"x-error {reason!r} does not say what is wrong ({reason_mentions!r})"
    original_queue = headers.get("x-original-queue")
    assert (original_queue.decode() if isinstance(original_queue, bytes) else original_queue) == ORDERS_QUEUE
