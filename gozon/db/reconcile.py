"""The reads of `gozon reconcile` (the comparison is `gozon.reconcile`'s): each database
in one read-only repeatable-read transaction, so every row comes from one instant, and
each table streamed through a cursor in order, a chunk at a time.

The two databases may be on separate servers, so they are read on connections of
their own and joined by the caller; the orders database is read first (see
`gozon.reconcile` for why). Any failure to read comes out as `DatabaseUnavailable`
naming the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gozon.db.database import UNREADABLE, Connection, connected, unreadable
from gozon.reconcile import Account, Order, Payment

# Rows per round trip: memory is this many rows a stream, whatever the table's size.
CHUNK = 5_000

ORDERS = "SELECT id, user_id, amount, status, created_at FROM orders ORDER BY id"
# A row per debit (the ledger allows one per order; its order_id references the
# payment, so a debit always has a payments row), folded into one per order below.
PAYMENTS = """
    SELECT p.order_id, p.user_id, p.amount, p.status, p.created_at, l.amount AS debit, a.user_id AS debited_user
    FROM payments p
    LEFT JOIN ledger l ON l.order_id = p.order_id
    LEFT JOIN accounts a ON a.id = l.account_id
    ORDER BY p.order_id"""
ACCOUNTS = """
    SELECT a.id, a.user_id, a.balance,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'deposit'), 0) AS deposits,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'debit'), 0) AS debits
    FROM accounts a
    LEFT JOIN ledger l ON l.account_id = a.id
    GROUP BY a.id
    ORDER BY a.id"""


class Snapshot:
    """One database as it was at one instant."""

    def __init__(self, con: Connection, name: str) -> None:
        self._con = con
        self.name = name

    async def started_at(self) -> datetime:
        """When the snapshot's transaction began, by the server's clock."""
        try:
            return await self._con.fetchval("SELECT now()")
        except UNREADABLE as exc:
            raise unreadable(self.name, exc) from exc

    def orders(self) -> AsyncIterator[Order]:
        return self._rows(ORDERS, lambda r: Order(*r))

    async def payments(self) -> AsyncIterator[Payment]:
        last = None
        async for order_id, user_id, amount, status, created_at, debit, debited_user in self._rows(PAYMENTS, tuple):
            if last is not None and last.order_id == order_id:  # another debit of the same order
                last = last._replace(debits=last.debits + 1, debited=last.debited + debit)
                continue
            if last is not None:
                yield last
            last = Payment(order_id, user_id, amount, status, created_at, debits=int(debit is not None),
                           debited=debit or 0, debited_user=debited_user)
        if last is not None:
            yield last

    def accounts(self) -> AsyncIterator[Account]:
        # A sum of bigints is a numeric (a Decimal here), and may outgrow a bigint.
        return self._rows(ACCOUNTS, lambda r: Account(r[0], r[1], r[2], int(r[3]), int(r[4])))

    async def _rows(self, query: str, row: Callable[[asyncpg.Record], Any]) -> AsyncIterator[Any]:
        try:
            cursor = await self._con.cursor(query)
            while chunk := await cursor.fetch(CHUNK):
                for record in chunk:
                    yield row(record)
        except UNREADABLE as exc:
            raise unreadable(self.name, exc) from exc


@asynccontextmanager
async def snapshots(orders_dsn: str, payments_dsn: str) -> AsyncIterator[tuple[Snapshot, Snapshot, datetime]]:
    """(orders, payments, when the orders snapshot began): orders read first, then payments."""
    async with _snapshot(orders_dsn) as orders:
        # A snapshot is fixed by its first query: this one, whose now() (the transaction's
        # start) is no later than the snapshot; the payments snapshot comes after it.
        taken_at = await orders.started_at()
        async with _snapshot(payments_dsn) as payments:
            yield orders, payments, taken_at


@asynccontextmanager
async def _snapshot(dsn: str) -> AsyncIterator[Snapshot]:
    async with connected(dsn) as con:  # nothing to commit: a read-only transaction just ends with it
        await con.transaction(isolation="repeatable_read", readonly=True).start()
        # The planner prices whole-table scans high enough to JIT-compile them,
        # which costs a streamed read more than it saves.
        await con.execute("SET LOCAL jit = off")
        yield Snapshot(con, urlsplit(dsn).path.lstrip("/"))
