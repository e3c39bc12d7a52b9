"""`gozon dlq` against the real RabbitMQ and PostgreSQL: dead letters made by the
consumer's own dead-letter path from real poison (and outbox rows set aside by the real
relay) are listed with their count, age and reasons, shown and left in place, replayed
to their original queue with their message id, and purged; bad input and a broker or
database it cannot use exit 2 with one line and change nothing."""

from __future__ import annotations

import uuid

import anyio
import msgspec
import pytest

from gozon.actors.relay import OutboxRelay
from gozon.amqp import topology
from gozon.amqp.broker import Broker
from gozon.amqp.topology import dead_letter_queue
from gozon.config import Settings
from gozon.db import Database, outbox
from gozon.messages import ORDERS_QUEUE, PaymentRequested
from gozon.payments import handlers as payments_handlers
from tests.integration.helpers import (
    amqp_channel,
    amqp_message,
    consumer_of,
    drain,
    eventually,
    publish,
    ready_count,
    running,
)
from tests.settings import TEST_SETTINGS, environment
from tests.support import GOZON, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DLQ = dead_letter_queue(ORDERS_QUEUE)
VALID = PaymentRequested(order_id=1, user_id=5, amount=100)
MALFORMED = b'{"type": "payment_requested", "order_id": 1,, "user_id": 5}'
AMOUNT_AS_TEXT = b'{"type": "payment_requested", "order_id": 2, "user_id": 5, "amount": "100"}'


async def gozon_dlq(*args: str, settings: Settings = TEST_SETTINGS) -> tuple[int, str, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process([*GOZON, "dlq", *args], env=environment(settings), cwd=ROOT, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def dead_lettered(broker: Broker, payments_db: Database, *bodies: bytes) -> list[str]:
    """Publish `bodies` as payment requests to orders_queue while the real payments
    consumer runs, which dead-letters them (poison); their message ids, in order."""
    ids = [str(uuid.uuid4()) for _ in bodies]
    consumer = consumer_of(broker, ORDERS_QUEUE, PaymentRequested, payments_handlers.payment_requested(payments_db),
                           payments_db)
    async with running(consumer):
        for message_id, body in zip(ids, bodies, strict=True):
            await publish(ORDERS_QUEUE, amqp_message(VALID, message_id=message_id, body=body))
        await eventually(lambda: _count_is(DLQ, len(bodies)), what=f"{len(bodies)} dead letters in {DLQ}")
    return ids


async def _count_is(queue: str, expected: int) -> bool:
    return await ready_count(queue) == expected


async def test_the_listing_counts_each_queue_with_its_oldest_and_its_reasons(broker, payments_db, orders_db) -> None:
    await dead_lettered(broker, payments_db, MALFORMED, MALFORMED, AMOUNT_AS_TEXT)
    code, out, err = await gozon_dlq()
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    [dlq] = [line for line in lines if line.startswith(DLQ)]
    assert "3 messages, oldest " in dlq and "age unknown" not in dlq, out
    at = lines.index(dlq)
    reasons = lines[at + 1:at + 3]
    assert reasons[0].split()[0] == "2" and "malformed" in reasons[0], out
    assert reasons[1].split()[0] == "1" and "$.amount" in reasons[1], out
    assert any(line.startswith(dead_letter_queue("payments_results_queue")) and line.endswith("empty")
               for line in lines), out
    assert any(line.startswith("orders.outbox (outbox rows set aside)") and line.endswith("empty")
               for line in lines), out
    assert await ready_count(DLQ) == 3, "listing consumed dead letters"


async def test_show_prints_each_message_and_leaves_it_in_the_queue(broker, payments_db) -> None:
    first, second = await dead_lettered(broker, payments_db, MALFORMED, AMOUNT_AS_TEXT)
    code, out, err = await gozon_dlq("show", DLQ)
    assert (code, err) == (0, ""), err
    blocks = out.split(f"\n{second}")
    assert blocks[0].startswith(f"{first}  payment_requested  ") and " old" in blocks[0].splitlines()[0], out
    assert "reason:" in blocks[0] and "malformed" in blocks[0], out
    assert f"original queue: {ORDERS_QUEUE}" in blocks[0], out
    assert f"body:           {MALFORMED.decode()}" in blocks[0], out
    assert "$.amount" in blocks[1] and AMOUNT_AS_TEXT.decode() in blocks[1], out

    code, out, _ = await gozon_dlq("show", DLQ, "--limit", "1")
    assert code == 0 and first in out and second not in out, out
    # Still there, each shown as often as it was (a quorum queue counts the returns,
    # and puts a returned message behind the others).
    assert await ready_count(DLQ) == 2
    code, out, _ = await gozon_dlq("show", DLQ)
    heads = {line.split()[0]: line for line in out.splitlines() if not line.startswith(" ")}
    assert heads[first].endswith("shown 2 time(s) before") and heads[second].endswith("shown 1 time(s) before"), out


async def test_replay_sends_the_chosen_message_to_its_queue_with_its_id_and_removes_it(broker, payments_db) -> None:
    first, second = await dead_lettered(broker, payments_db, MALFORMED, AMOUNT_AS_TEXT)
    code, out, _ = await gozon_dlq("replay", DLQ, "--id", second, "--dry-run")
    assert (code, out.splitlines()) == (0, [f"would replay {second} to {ORDERS_QUEUE}"]), out
    assert (await ready_count(DLQ), await ready_count(ORDERS_QUEUE)) == (2, 0), "a dry run changed something"

    code, out, err = await gozon_dlq("replay", DLQ, "--id", second)
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [f"replayed {second} to {ORDERS_QUEUE}", f"replayed 1 from {DLQ}"]
    [replayed] = await drain(ORDERS_QUEUE)
    assert (replayed.message_id, replayed.body, replayed.type) == (second, AMOUNT_AS_TEXT, "payment_requested")
    assert replayed.correlation_id == "test-trace"
    assert not {"x-error", "x-death", "x-original-queue"} & set(replayed.headers or {}), replayed.headers
    assert [m.message_id for m in await drain(DLQ)] == [first], "the other dead letter moved"


async def test_replay_of_an_unknown_id_says_so_and_changes_nothing(broker, payments_db) -> None:
    await dead_lettered(broker, payments_db, MALFORMED)
    missing = str(uuid.uuid4())
    code, out, _ = await gozon_dlq("replay", DLQ, "--id", missing)
    assert code == 1 and f"not found {missing}" in out, out
    assert (await ready_count(DLQ), await ready_count(ORDERS_QUEUE)) == (1, 0)


async def test_purge_asks_refuses_without_a_terminal_and_deletes_what_it_is_told(broker, payments_db) -> None:
    first, second, third = await dead_lettered(broker, payments_db, MALFORMED, MALFORMED, AMOUNT_AS_TEXT)
    code, out, err = await gozon_dlq("purge", DLQ, "--all")  # stdin is no terminal here
    assert code == 2 and "--yes" in err and len(err.splitlines()) == 1, err
    assert await ready_count(DLQ) == 3

    code, out, _ = await gozon_dlq("purge", DLQ, "--id", second, "--yes")
    assert (code, out.strip()) == (0, f"purged 1 from {DLQ}"), out
    assert await ready_count(DLQ) == 2
    code, out, _ = await gozon_dlq("purge", DLQ, "--all", "--yes")
    assert (code, out.strip()) == (0, f"purged 2 from {DLQ}"), out
    assert await ready_count(DLQ) == 0


@pytest.mark.parametrize("args", [["show", "nope"], ["replay", "nope", "--all"], ["purge", ORDERS_QUEUE, "--all"],
                                  ["replay", "orders.outbox", "--id", "not-a-uuid"]])
async def test_a_queue_that_is_none_of_ours_or_a_bad_id_exits_2_with_one_line(args, broker) -> None:
    code, out, err = await gozon_dlq(*args)
    assert (code, out) == (2, ""), (out, err)
    assert len(err.splitlines()) == 1 and err.startswith("gozon dlq: ") and "Traceback" not in err, err


async def test_a_dead_letter_queue_missing_on_the_broker_exits_2(broker) -> None:
    async with amqp_channel() as channel:
        await channel.queue_delete(DLQ)
    try:
        code, _, err = await gozon_dlq("show", DLQ)
        assert code == 2 and err.strip() == f"gozon dlq: queue {DLQ!r} does not exist on the broker", err
    finally:
        async with amqp_channel() as channel:
            await topology.declare(channel)


async def test_a_broker_that_is_down_or_a_database_it_cannot_read_exits_2(broker, orders_db) -> None:
    nowhere = msgspec.structs.replace(TEST_SETTINGS, amqp_url="amqp://guest:guest@127.0.0.1:1/")
    code, out, err = await gozon_dlq(settings=nowhere)
    assert (code, out) == (2, "") and err.startswith("gozon dlq: broker unavailable: "), err
    assert len(err.splitlines()) == 1, err
    missing = msgspec.structs.replace(TEST_SETTINGS, orders_db=TEST_SETTINGS.orders_db + "_missing")
    code, _, err = await gozon_dlq("show", "orders.outbox", settings=missing)
    assert code == 2 and err.startswith("gozon dlq: cannot read database ") and "_missing" in err, err
    assert len(err.splitlines()) == 1, err


async def test_outbox_rows_set_aside_are_listed_replayed_once_routable_and_purged(broker, orders_db) -> None:
    # The relay sets rows aside the real way: orders_queue is gone, so they are unroutable.
    async with amqp_channel() as channel:
        await channel.queue_delete(ORDERS_QUEUE)
    try:
        async with orders_db.acquire() as con, con.transaction():
            sent = [await outbox.append(con, PaymentRequested(order_id=n, user_id=5, amount=10 * n), f"trace-{n}")
                    for n in (1, 2)]
        async with running(OutboxRelay(orders_db, broker, batch=10, poll_interval=0.2)):
            await eventually(lambda: _aside_count(orders_db, 2), what="both rows set aside")
        async with orders_db.acquire() as con:
            [before, _] = await outbox.set_aside_rows(con)

        code, out, _ = await gozon_dlq()
        [line] = [line for line in out.splitlines() if line.startswith("orders.outbox")]
        assert "2 rows, oldest " in line, out
        assert out.splitlines()[out.splitlines().index(line) + 1].split()[0] == "2" and "NO_ROUTE" in out, out
        code, out, _ = await gozon_dlq("show", "orders.outbox")
        assert code == 0 and str(sent[0].message_id) in out and f"destination:    {ORDERS_QUEUE}" in out, out

        # Still unroutable: refused again, each row stays aside with the new refusal.
        code, out, _ = await gozon_dlq("replay", "orders.outbox", "--id", str(sent[0].message_id))
        assert code == 1 and f"refused {sent[0].message_id}: unroutable" in out, out
        async with orders_db.acquire() as con:
            [again, _] = await outbox.set_aside_rows(con)
        assert again.set_aside_at > before.set_aside_at and "NO_ROUTE" in again.reason
    finally:
        async with amqp_channel() as channel:
            await topology.declare(channel)

    code, out, err = await gozon_dlq("replay", "orders.outbox", "--id", str(sent[0].message_id))
    assert (code, err) == (0, ""), err
    assert f"replayed {sent[0].message_id} to {ORDERS_QUEUE}" in out, out
    [published] = await drain(ORDERS_QUEUE)
    assert published.message_id == str(sent[0].message_id)
    assert msgspec.json.decode(published.body, type=PaymentRequested) == PaymentRequested(order_id=1, user_id=5,
                                                                                         amount=10)
    async with orders_db.acquire() as con:
        assert [r.envelope.message_id for r in await outbox.set_aside_rows(con)] == [sent[1].message_id]
        assert await con.fetchval("SELECT sent_at IS NOT NULL FROM outbox WHERE message_id = $1", sent[0].message_id)

    code, out, _ = await gozon_dlq("purge", "orders.outbox", "--all", "--yes")
    assert (code, out.strip()) == (0, "purged 1 from orders.outbox"), out
    async with orders_db.acquire() as con:
        assert await outbox.set_aside_rows(con) == []
        assert await con.fetchval("SELECT count(*) FROM outbox") == 1, "purge deleted a row that was sent"


async def _aside_count(db: Database, expected: int) -> bool:
    async with db.acquire() as con:
        return await outbox.set_aside_count(con) == expected
