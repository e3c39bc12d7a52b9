"""Accounts and payments in PostgreSQL.

A payment request is handled in one transaction: the message id goes into the inbox
(a duplicate stops here), the order into `payments` (an order seen before stops here),
the debit is one conditional UPDATE (`balance >= amount`, so concurrent orders never
overdraw), a ledger row records it, and the result goes into the outbox.
"""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from gozon.amqp.topology import PAYMENT_EVENTS
from gozon.db import inbox, outbox
from gozon.db.migrate import COMMON
from gozon.messages import MAX_ID, PaymentRequested, PaymentResult
from gozon.payments.schemas import Account, Balance

MIGRATIONS = [COMMON, "gozon.payments.migrations"]

log = structlog.get_logger("gozon.payments")

_COLUMNS = "id, user_id, balance, created_at"


class AccountExists(Exception):
    pass


class AccountNotFound(Exception):
    pass


class BalanceOverflow(Exception):
    pass


async def create_account(con: asyncpg.Connection, user_id: int) -> Account:
    row = await con.fetchrow(
        f"INSERT INTO accounts (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING RETURNING {_COLUMNS}",
        user_id,
    )
    if row is None:
        raise AccountExists
    return Account(**row)


async def deposit(con: asyncpg.Connection, user_id: int, amount: int) -> Account:
    """Add `amount`; refused (nothing changes) when the balance would pass 2^63-1."""
    async with con.transaction():
        row = await con.fetchrow(
            f"UPDATE accounts SET balance = balance + $2 WHERE user_id = $1 AND balance <= $3::bigint - $2::bigint"
            f" RETURNING {_COLUMNS}",
            user_id, amount, MAX_ID,
        )
        if row is None:
            exists = await con.fetchval("SELECT true FROM accounts WHERE user_id = $1", user_id)
            raise BalanceOverflow if exists else AccountNotFound
        await con.execute(
            "INSERT INTO ledger (account_id, kind, amount) VALUES ($1, 'deposit', $2)", row["id"], amount
        )
    return Account(**row)


async def balance(con: asyncpg.Connection, user_id: int) -> Balance:
    value = await con.fetchval("SELECT balance FROM accounts WHERE user_id = $1", user_id)
    if value is None:
        raise AccountNotFound
    return Balance(user_id=user_id, balance=value)


async def pay(con: asyncpg.Connection, message_id: uuid.UUID, request: PaymentRequested,
              trace_id: str | None) -> PaymentResult | None:
    """Charge the order once; returns the result, or None when nothing was to be done."""
    async with con.transaction():
        if not await inbox.record(con, message_id, "payment_requested"):
            log.info("duplicate message skipped")
            return None
        first = await con.fetchval(
            "INSERT INTO payments (order_id, user_id, amount, status) VALUES ($1, $2, $3, 'failed')"
            " ON CONFLICT (order_id) DO NOTHING RETURNING true",
            request.order_id, request.user_id, request.amount,
        )
        if not first:
            log.warning("order was already paid or refused, not charged again")
            return None
        account_id = await con.fetchval(
            "UPDATE accounts SET balance = balance - $2 WHERE user_id = $1 AND balance >= $2 RETURNING id",
            request.user_id, request.amount,
        )
        if account_id is not None:
            await con.execute(
                "INSERT INTO ledger (account_id, kind, amount, order_id) VALUES ($1, 'debit', $2, $3)",
                account_id, request.amount, request.order_id,
            )
            result = PaymentResult(order_id=request.order_id, user_id=request.user_id,
                                   amount=request.amount, status="success")
        else:
            exists = await con.fetchval("SELECT true FROM accounts WHERE user_id = $1", request.user_id)
            result = PaymentResult(order_id=request.order_id, user_id=request.user_id, amount=request.amount,
                                   status="failed", reason="insufficient_funds" if exists else "account_not_found")
        await con.execute(
            "UPDATE payments SET status = $2, reason = $3 WHERE order_id = $1",
            request.order_id, result.status, result.reason,
        )
        await outbox.append(con, result, exchange=PAYMENT_EVENTS, routing_key="", trace_id=trace_id)
    return result
