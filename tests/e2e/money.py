"""The money invariants (SPEC invariants 2 and 3), checked against what the API shows
and what the payments ledger holds, and by `gozon reconcile` over both databases."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import anyio
import asyncpg
import httpx

from tests.e2e.shopper import balance_of
from tests.settings import TEST_SETTINGS, environment


def ledger_debits(order_ids: Iterable[int], payments_db: str = TEST_SETTINGS.payments_db) -> dict[int, list[int]]:
    """order_id → the amounts of its ledger debits, read from the payments database
    (invariant 3 cannot be seen through the API)."""

    async def fetch() -> dict[int, list[int]]:
        con = await asyncpg.connect(payments_db)
        try:
            rows = await con.fetch("SELECT order_id, amount FROM ledger WHERE kind = 'debit'"
                                   " AND order_id = any($1::bigint[])", list(order_ids))
        finally:
            await con.close()
        debits: dict[int, list[int]] = {}
        for row in rows:
            debits.setdefault(row["order_id"], []).append(row["amount"])
        return debits

    return anyio.run(fetch)


def check_money(http: httpx.Client, deposits: dict[int, int], orders_by_user: dict[int, list[dict]], *,
                payments_db: str = TEST_SETTINGS.payments_db) -> None:
    """Invariants 2 and 3 for every user: balance = deposits − finished amounts, ≥ 0;
    one debit of the order's amount per finished order, none per cancelled one
    (`payments_db`: where payments keeps its ledger)."""
    all_orders = [o for orders in orders_by_user.values() for o in orders]
    debits = ledger_debits((o["id"] for o in all_orders), payments_db)
    for user_id, deposit in deposits.items():
        orders = orders_by_user[user_id]
        spent = sum(o["amount"] for o in orders if o["status"] == "finished")
        balance = balance_of(http, user_id)
        assert balance >= 0, f"user {user_id}: negative balance {balance}"
        assert balance == deposit - spent, (
            f"user {user_id}: balance {balance} != deposits {deposit} - finished {spent}"
            f" (a double or a lost charge)")
    for order in all_orders:
        expected = [order["amount"]] if order["status"] == "finished" else []
        assert debits.get(order["id"], []) == expected, f"order {order}: ledger debits {debits.get(order['id'])}"


def check_reconciled() -> None:
    """`gozon reconcile`, run as the payments team would, finds no break anywhere in the
    test databases: not only in the orders a test knows of."""
    done = subprocess.run([Path(sys.executable).with_name("gozon"), "reconcile"], env=environment(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"gozon reconcile exited {done.returncode}:\n{done.stdout}{done.stderr}"
