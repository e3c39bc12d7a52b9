"""Orders in PostgreSQL. An order and the payment request that announces it are written
in one transaction; a payment result moves an order out of `new` once, never back."""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from gozon.amqp.topology import DEFAULT_EXCHANGE, ORDERS_QUEUE
from gozon.db import inbox, outbox
from gozon.db.migrate import COMMON
from gozon.messages import PaymentRequested, PaymentResult
from gozon.orders.schemas import CreateOrder, Order

MIGRATIONS = [COMMON, "gozon.orders.migrations"]

log = structlog.get_logger("gozon.orders")

_COLUMNS = "id, user_id, amount, status, created_at, reason"

# How long a concurrent request with the same Idempotency-Key waits for the first.
KEY_WAIT = "5s"


class KeyReused(Exception):
    """The Idempotency-Key was used before with another body."""


class KeyBusy(Exception):
    """A request with the same Idempotency-Key is still being handled."""


def _order(row: asyncpg.Record) -> Order:
    return Order(**row)


async def create_order(con: asyncpg.Connection, new: CreateOrder, *, trace_id: str,
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
                con, PaymentRequested(order_id=order.id, user_id=order.user_id, amount=order.amount),
                exchange=DEFAULT_EXCHANGE, routing_key=ORDERS_QUEUE, trace_id=trace_id,
            )
    except asyncpg.LockNotAvailableError:
        raise KeyBusy from None
    return order, True


async def _replay(con: asyncpg.Connection, new: CreateOrder, key: str) -> Order | None:
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


async def list_orders(con: asyncpg.Connection, user_id: int, limit: int, before_id: int | None) -> list[Order]:
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE user_id = $1 AND ($3::bigint IS NULL OR id < $3)"
        " ORDER BY id DESC LIMIT $2",
        user_id, limit, before_id,
    )
    return [_order(row) for row in rows]


async def get_order(con: asyncpg.Connection, order_id: int) -> Order | None:
    row = await con.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
    return None if row is None else _order(row)


async def settle(con: asyncpg.Connection, message_id: uuid.UUID, result: PaymentResult) -> None:
    """Apply a payment result once: a duplicate message, or a result for an order that
    is no longer `new`, changes nothing."""
    async with con.transaction():
        if not await inbox.record(con, message_id, "payment_result"):
            log.info("duplicate message skipped")
            return
        status = await con.fetchval(
            "UPDATE orders SET status = $2, reason = $3, updated_at = now()"
            " WHERE id = $1 AND status = 'new' RETURNING status",
            result.order_id, result.order_status, result.reason,
        )
    if status is not None:
        log.info("order status changed", status=status, reason=result.reason)
    else:
        log.warning("payment result for an order that is not new, ignored")
