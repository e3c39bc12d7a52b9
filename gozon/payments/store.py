"""Accounts and payments in PostgreSQL.

Payment requests are handled a batch in one transaction: the message ids go into the
inbox (a duplicate stops here), the orders into `payments` (an order seen before stops
here), each debit is one conditional UPDATE (`balance >= amount`, so concurrent orders
never overdraw), a ledger row records it, and the results go into the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from gozon.db import Connection, inbox, outbox
from gozon.db.migrate import COMMON
from gozon.errors import Poison
from gozon.messages import MAX_ID, PaymentRequested, PaymentResult
from gozon.payments.schemas import Account, Balance

MIGRATIONS = [COMMON, "gozon.payments.migrations"]

_COLUMNS = "id, user_id, balance, created_at"


class AccountExists(Exception):
    pass


class AccountNotFound(Exception):
    pass


class BalanceOverflow(Exception):
    pass


async def create_account(con: Connection, user_id: int) -> Account:
    row = await con.fetchrow(
        f"INSERT INTO accounts (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING RETURNING {_COLUMNS}",
        user_id,
    )
    if row is None:
        raise AccountExists
    return Account(**row)


async def deposit(con: Connection, user_id: int, amount: int) -> Account:
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


async def balance(con: Connection, user_id: int) -> Balance:
    value = await con.fetchval("SELECT balance FROM accounts WHERE user_id = $1", user_id)
    if value is None:
        raise AccountNotFound
    return Balance(user_id=user_id, balance=value)


class Charge(msgspec.Struct, frozen=True):
    """A payment request as it arrived: the message that carried it and its trace."""

    message_id: uuid.UUID
    request: PaymentRequested
    trace_id: str | None


async def pay(con: Connection, charges: Sequence[Charge]) -> dict[uuid.UUID, PaymentResult | str]:
    """Charge each order once, all in one transaction; returns what became of each
    message: its result, or `duplicate` (its id was seen before) or `charged_before`
    (its order was paid or refused already, under another message)."""
    async with con.transaction():
        fresh = await inbox.record_all(con, [c.message_id for c in charges], "payment_requested")
        # One charge per message, and per order: the first of the batch that asks.
        first_asked = {}
        for charge in charges:
            if charge.message_id in fresh:
                first_asked.setdefault(charge.request.order_id, charge)
        await _check_terms(con, [c.request for c in charges if c.message_id in fresh])
        asked = list(first_asked.values())
        claimed = {row["order_id"] for row in await con.fetch(
            "INSERT INTO payments (order_id, user_id, amount, status)"
            " SELECT order_id, user_id, amount, 'failed' FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])"
            " AS asked (order_id, user_id, amount) ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
            [c.request.order_id for c in asked], [c.request.user_id for c in asked],
            [c.request.amount for c in asked],
        )} if asked else set()
        # One conditional debit per order, in the order they came for each user (so a
        # balance is spent first come, first served) and by user (so concurrent batches
        # lock accounts in the same order and never deadlock).
        to_charge = sorted((c for c in asked if c.request.order_id in claimed), key=lambda c: c.request.user_id)
        debited = {row["order_id"]: row["account_id"] for row in await con.fetchmany(
            "UPDATE accounts SET balance = balance - $2 WHERE user_id = $1 AND balance >= $2"
            " RETURNING id AS account_id, $3::bigint AS order_id",
            [(c.request.user_id, c.request.amount, c.request.order_id) for c in to_charge],
        )} if to_charge else {}
        refused = [c for c in to_charge if c.request.order_id not in debited]
        with_account = {row["user_id"] for row in await con.fetch(
            "SELECT user_id FROM accounts WHERE user_id = any($1::bigint[])", [c.request.user_id for c in refused],
        )} if refused else set()
        results = {c.message_id: _result(c.request, c.request.order_id in debited, c.request.user_id in with_account)
                   for c in to_charge}
        paid = [c for c in to_charge if c.request.order_id in debited]
        if paid:
            await con.execute(
                "INSERT INTO ledger (account_id, kind, amount, order_id)"
                " SELECT account_id, 'debit', amount, order_id FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])"
                " AS paid (account_id, amount, order_id)",
                [debited[c.request.order_id] for c in paid], [c.request.amount for c in paid],
                [c.request.order_id for c in paid],
            )
        if to_charge:
            outcome = [results[c.message_id] for c in to_charge]
            await con.execute(
                "UPDATE payments SET status = r.status, reason = r.reason"
                " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS r (order_id, status, reason)"
                " WHERE payments.order_id = r.order_id",
                [r.order_id for r in outcome], [r.status for r in outcome], [r.reason for r in outcome],
            )
            await outbox.append_all(con, [(results[c.message_id], c.trace_id) for c in to_charge])
    return {c.message_id: results.get(c.message_id, "charged_before" if c.message_id in fresh else "duplicate")
            for c in charges}


async def _check_terms(con: Connection, requests: Sequence[PaymentRequested]) -> None:
    """Raises `Poison` (rolling the batch back) for a request whose order is known, from
    an earlier request or this batch, under other terms (user or amount)."""
    terms = {row["order_id"]: (row["user_id"], row["amount"]) for row in await con.fetch(
        "SELECT order_id, user_id, amount FROM payments WHERE order_id = any($1::bigint[])",
        [r.order_id for r in requests],
    )} if requests else {}
    for request in requests:
        known = terms.setdefault(request.order_id, (request.user_id, request.amount))
        if known != (request.user_id, request.amount):
            raise Poison(f"order {request.order_id} was asked to be paid by user {known[0]}, amount {known[1]};"
                         f" this request names user {request.user_id}, amount {request.amount}")


def _result(request: PaymentRequested, debited: bool, has_account: bool) -> PaymentResult:
    if debited:
        return PaymentResult(order_id=request.order_id, user_id=request.user_id, amount=request.amount,
                             status="success")
    return PaymentResult(order_id=request.order_id, user_id=request.user_id, amount=request.amount,
                         status="failed", reason="insufficient_funds" if has_account else "account_not_found")
