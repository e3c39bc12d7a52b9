"""`gozon reconcile` against the real databases: each kind of break, planted with plain
SQL, is reported by kind and id with exit status 1, in lines and in JSON; books that
agree exit 0; a database it cannot read exits 2 with a message and no traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import msgspec
import pytest

from gozon.config import Settings
from gozon.db import Database
from tests.settings import TEST_SETTINGS, environment

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

GOZON = Path(sys.executable).with_name("gozon")


async def gozon_reconcile(*args: str, settings: Settings = TEST_SETTINGS) -> tuple[int, str, str]:
    done = await anyio.run_process([GOZON, "reconcile", *args], env=environment(settings), check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def books(orders_db: Database, payments_db: Database, orders: list[tuple], payments: list[tuple],
                accounts: list[tuple], ledger: list[tuple]) -> None:
    """Rows as given: orders (id, user_id, amount, status, age in minutes), payments
    (order_id, user_id, amount, status), accounts (id, user_id, balance), ledger
    (account_id, kind, amount, order_id)."""
    async with orders_db.acquire() as con:
        await con.executemany(
            "INSERT INTO orders (id, user_id, amount, status, created_at)"
            " VALUES ($1, $2, $3, $4, now() - make_interval(mins => $5))", orders)
    async with payments_db.acquire() as con:
        await con.executemany("INSERT INTO accounts (id, user_id, balance) VALUES ($1, $2, $3)", accounts)
        await con.executemany("INSERT INTO payments (order_id, user_id, amount, status) VALUES ($1, $2, $3, $4)",
                              payments)
        await con.executemany("INSERT INTO ledger (account_id, kind, amount, order_id) VALUES ($1, $2, $3, $4)",
                              ledger)


@pytest.fixture
async def negative_balances_allowed(payments_db: Database) -> AsyncIterator[Database]:
    """The payments database without its `balance >= 0` check (put back afterwards), so
    that a negative balance can be planted at all."""
    async with payments_db.acquire() as con:
        await con.execute("ALTER TABLE accounts DROP CONSTRAINT accounts_balance_check")
    yield payments_db
    async with payments_db.acquire() as con:
        await con.execute("TRUNCATE ledger, payments, accounts CASCADE")
        await con.execute("ALTER TABLE accounts ADD CONSTRAINT accounts_balance_check CHECK (balance >= 0)")


async def test_books_that_agree_exit_0(orders_db: Database, payments_db: Database) -> None:
    await books(
        orders_db, payments_db,
        orders=[(1, 10, 200, "finished", 5), (2, 10, 900, "cancelled", 5), (3, 10, 100, "new", 1)],
        payments=[(1, 10, 200, "success"), (2, 10, 900, "failed"), (3, 10, 100, "success")],
        accounts=[(1, 10, 700), (2, 20, 0)],
        ledger=[(1, "deposit", 1000, None), (1, "debit", 200, 1), (1, "debit", 100, 3)],
    )
    # Order 3 is in flight: paid, its result not yet back at the orders service.
    status, out, err = await gozon_reconcile()
    assert (status, out, err) == (0, "reconcile: no breaks in 3 orders and 2 accounts\n", "")
    status, out, _ = await gozon_reconcile("--json")
    assert status == 0
    assert json.loads(out) == {
        "ok": True, "breaks": [], "counts": dict.fromkeys(json.loads(out)["counts"], 0),
        "checked": {"orders": 3, "payments": 3, "accounts": 2},
    }


# One of each kind, on ids of its own; the rest of the books agree.
PLANTED = {
    ("finished_without_debit", "order", 4),  # finished, its payment a success, no debit
    ("cancelled_with_debit", "order", 5),
    ("stale_new_order", "order", 6),  # new for two hours
    ("payment_without_order", "order", 7),
    ("debit_without_order", "order", 8),
    ("debit_amount_mismatch", "order", 9),  # 90 ordered, 60 debited
    ("payment_status_mismatch", "order", 10),  # cancelled, its payment a success
    ("debit_account_mismatch", "order", 11),  # user 1's order, debited from user 2
    ("balance_mismatch", "account", 2),  # 100 deposited, 40 debited, balance 61
    ("negative_balance", "account", 3),  # 10 deposited, 15 debited, balance -5
}


async def test_each_kind_of_break_is_reported_by_kind_and_id(orders_db: Database,
                                                             negative_balances_allowed: Database) -> None:
    await books(
        orders_db, negative_balances_allowed,
        orders=[(1, 1, 200, "finished", 5), (2, 1, 300, "cancelled", 5), (3, 1, 100, "new", 1),
                (4, 1, 150, "finished", 5), (5, 1, 120, "cancelled", 5), (6, 1, 50, "new", 120),
                (9, 1, 90, "finished", 5), (10, 1, 70, "cancelled", 5), (11, 1, 40, "finished", 5),
                (12, 3, 15, "finished", 5)],
        payments=[(1, 1, 200, "success"), (2, 1, 300, "failed"), (4, 1, 150, "success"), (5, 1, 120, "failed"),
                  (7, 1, 30, "failed"), (8, 1, 80, "success"), (9, 1, 90, "success"), (10, 1, 70, "success"),
                  (11, 1, 40, "success"), (12, 3, 15, "success")],
        # Account 1: 1000 − (200 + 120 + 80 + 60) = 540, as it should be.
        accounts=[(1, 1, 540), (2, 2, 61), (3, 3, -5)],
        ledger=[(1, "deposit", 1000, None), (1, "debit", 200, 1), (1, "debit", 120, 5), (1, "debit", 80, 8),
                (1, "debit", 60, 9), (2, "deposit", 100, None), (2, "debit", 40, 11),
                (3, "deposit", 10, None), (3, "debit", 15, 12)],
    )
    status, out, err = await gozon_reconcile("--json", "--stale-after", "60")
    assert status == 1, err
    report = json.loads(out)
    found = {(b["kind"], "order" if b["order_id"] is not None else "account", b["order_id"] or b["account_id"])
             for b in report["breaks"]}
    assert found == PLANTED
    assert len(report["breaks"]) == len(PLANTED) and report["ok"] is False
    assert report["counts"] == {kind: 1 for kind, _, _ in PLANTED}
    assert report["checked"] == {"orders": 10, "payments": 10, "accounts": 3}
    amount = next(b for b in report["breaks"] if b["kind"] == "debit_amount_mismatch")
    assert (amount["expected"], amount["found"]) == ("a debit of 90", "a debit of 60")

    status, out, err = await gozon_reconcile()
    lines = out.splitlines()
    assert status == 1 and err == ""
    assert len(lines) == len(PLANTED) + 1
    assert "finished_without_debit order 4 (user 1): expected 1 debit of 150, found 0 debits" in lines
    assert "negative_balance account 3 (user 3): expected balance >= 0, found balance -5" in lines
    assert lines[-1] == ("reconcile: 10 breaks in 10 orders and 3 accounts (finished_without_debit 1,"
                         " cancelled_with_debit 1, payment_without_order 1, debit_without_order 1, stale_new_order 1,"
                         " debit_amount_mismatch 1, debit_account_mismatch 1, payment_status_mismatch 1,"
                         " balance_mismatch 1, negative_balance 1)")

    # With a longer grace, order 6 is only late, not lost.
    status, out, _ = await gozon_reconcile("--json", "--stale-after", "180")
    assert status == 1 and json.loads(out)["counts"]["stale_new_order"] == 0


@pytest.mark.parametrize("which", ["orders_db", "payments_db"])
@pytest.mark.parametrize("dsn", ["postgresql://postgres@127.0.0.1:1/gozon_nowhere",
                                 "postgresql://postgres@127.0.0.1:5432/gozon_test_no_such_database"],
                         ids=["refused", "missing"])
async def test_a_database_it_cannot_read_exits_2(clean_slate: None, which: str, dsn: str) -> None:
    settings = msgspec.structs.replace(TEST_SETTINGS, **{which: dsn})
    status, out, err = await gozon_reconcile("--json", settings=settings)
    assert status == 2 and out == ""
    assert err.startswith(f"gozon reconcile: cannot read database '{dsn.rsplit('/', 1)[1]}': ")
    assert "Traceback" not in err and len(err.splitlines()) == 1

