"""Orders in PostgreSQL. An order and the payment request that announces it are written
in one transaction; a payment result moves an order out of `new` once, never back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

from gozon import metrics
from gozon.db import Connection, LockTimeout, inbox, outbox, rows_affected
from gozon.db.migrate import COMMON
from gozon.errors import Poison
from gozon.messages import PaymentRequested, PaymentResult
from gozon.orders.schemas import CreateOrder, Order

MIGRATIONS = [COMMON, "gozon.orders.migrations"]

_COLUMNS = "id, user_id, amount, status, created_at, reason"

# How long a concurrent request with the same Idempotency-Key waits for the first.
KEY_WAIT = "5s"


class KeyReused(Exception):
    """The Idempotency-Key was used before with another body."""


class KeyBusy(Exception):
    """A request with the same Idempotency-Key is still being handled."""


def _order(row: Mapping) -> Order:
    return Order(**row)


async def create_order(con: Connection, new: CreateOrder, *, trace_id: str,
                       idempotency_key: str | None) -> tuple[Order, bool]:
    """Create the order and its payment request; with a key seen before for this user,
    return that order instead. Returns (order, created)."""
    try:
        async with con.transaction():
            if idempotency_key is not None:
                await con.execute(f"SET LOCAL lock_timeout = '{KEY_WAIT}'")
                earlier = await _replay(con, new, idempotency_key)
                if earlier is not None:
                    return earlier, False
            row = await con.fetchrow(
                f"INSERT INTO orders (user_id, amount, trace_id) VALUES ($1, $2, $3) RETURNING {_COLUMNS}",
                new.user_id, new.amount, trace_id,
            )
            order = _order(row)
            if idempotency_key is not None:
                await con.execute(
                    "UPDATE idempotency_keys SET order_id = $3 WHERE user_id = $1 AND key = $2",
                    new.user_id, idempotency_key, order.id,
                )
            await outbox.append(
                con, PaymentRequested(order_id=order.id, user_id=order.user_id, amount=order.amount), trace_id)
    except LockTimeout:
        raise KeyBusy from None
    return order, True


async def create_orders(con: Connection, requests: Sequence[tuple[CreateOrder, str]]) -> list[Order]:
    """Create the orders of (order, trace id) `requests` and their payment requests, in
    one transaction of two statements; the orders come back in the order asked."""
    async with con.transaction():
        rows = await con.fetch(
            "INSERT INTO orders (user_id, amount, trace_id)"
            " SELECT user_id, amount, trace_id FROM unnest($1::bigint[], $2::bigint[], $3::text[])"
            " WITH ORDINALITY AS asked (user_id, amount, trace_id, n) ORDER BY n"
            f" RETURNING {_COLUMNS}",
            [new.user_id for new, _ in requests], [new.amount for new, _ in requests],
            [trace_id for _, trace_id in requests],
        )
        # Ids are drawn in insertion order, which is the order asked.
        orders = sorted((_order(row) for row in rows), key=lambda order: order.id)
        await outbox.append_all(con, [
            (PaymentRequested(order_id=order.id, user_id=order.user_id, amount=order.amount), trace_id)
            for order, (_, trace_id) in zip(orders, requests, strict=True)])
    return orders


async def _replay(con: Connection, new: CreateOrder, key: str) -> Order | None:
    """Claim `key` for this request, or return the order an earlier request made with it.
    A concurrent twin's claim blocks here until the first one commits."""
    claimed = await con.fetchval(
        "INSERT INTO idempotency_keys (user_id, key, amount) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        new.user_id, key, new.amount,
    )
    if claimed:
        return None
    row = await con.fetchrow(
        f"SELECT k.amount AS key_amount, {', '.join('o.' + c for c in _COLUMNS.split(', '))}"
        " FROM idempotency_keys k JOIN orders o ON o.id = k.order_id WHERE k.user_id = $1 AND k.key = $2",
        new.user_id, key,
    )
    if row["key_amount"] != new.amount:
        raise KeyReused
    return _order({k: v for k, v in row.items() if k != "key_amount"})


async def list_orders(con: Connection, user_id: int, limit: int, before_id: int | None) -> list[Order]:
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE user_id = $1 AND ($3::bigint IS NULL OR id < $3)"
        " ORDER BY id DESC LIMIT $2",
        user_id, limit, before_id,
    )
    return [_order(row) for row in rows]


async def get_order(con: Connection, order_id: int) -> Order | None:
    row = await con.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
    return None if row is None else _order(row)


async def settle(con: Connection, results: Sequence[tuple[uuid.UUID, PaymentResult]]) -> dict[uuid.UUID, str]:
    """Apply payment results, each once, in one transaction: a duplicate message, or a
    result for an order that is no longer `new`, changes nothing. Returns what became of
    each message: `duplicate`, `settled` or `ignored`."""
    async with con.transaction():
        fresh = await inbox.record_all(con, [message_id for message_id, _ in results], "payment_result")
        await _check_about_their_orders(con, [result for message_id, result in results if message_id in fresh])
        # One result per order: the first of the batch (the others find it no longer `new`).
        first: dict[int, tuple[uuid.UUID, PaymentResult]] = {}
        for message_id, result in results:
            if message_id in fresh:
                first.setdefault(result.order_id, (message_id, result))
        applied = [result for _, result in first.values()]
        settled = {row["id"]: row for row in await con.fetch(
            "UPDATE orders SET status = r.status, reason = r.reason, updated_at = now()"
            " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS r (id, status, reason)"
            " WHERE orders.id = r.id AND orders.status = 'new'"
            " RETURNING orders.id, orders.status,"
            " extract(epoch FROM clock_timestamp() - orders.created_at)::float8 AS waited",
            [r.order_id for r in applied], [r.order_status for r in applied], [r.reason for r in applied],
        )} if applied else {}
    # Once committed: the time from the POST to its result, by the database's clock.
    for row in settled.values():
        metrics.ORDER_SETTLE.labels(row["status"]).observe(row["waited"])
    winners = {message_id for message_id, result in first.values() if result.order_id in settled}
    return {message_id: "duplicate" if message_id not in fresh else "settled" if message_id in winners else "ignored"
            for message_id, _ in results}


async def _check_about_their_orders(con: Connection, results: Sequence[PaymentResult]) -> None:
    """Raises `Poison` (rolling the batch back) for a result that names another user or
    amount than its order's, or an order there is not: a forged or garbled result must
    never settle an order."""
    terms = {row["id"]: (row["user_id"], row["amount"]) for row in await con.fetch(
        "SELECT id, user_id, amount FROM orders WHERE id = any($1::bigint[])", [r.order_id for r in results],
    )} if results else {}
    for result in results:
        known = terms.get(result.order_id)
        if known != (result.user_id, result.amount):
            raise Poison(f"a payment result for order {result.order_id} of user {result.user_id},"
                         f" amount {result.amount}, does not match " + (
                             "any order" if known is None else f"the order (user {known[0]}, amount {known[1]})"))


async def purge_idempotency_keys(con: Connection, older_than: timedelta) -> int:
    """Forget the Idempotency-Keys claimed longer ago than `older_than`."""
    return rows_affected(await con.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval", older_than))
