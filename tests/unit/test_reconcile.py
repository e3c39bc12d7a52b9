"""`gozon reconcile`'s comparison on rows written by hand: the merge of the two sorted
streams, what is a break and what is in flight, and what it prints. (The reads and the
command against real databases: tests/integration/test_reconcile.py.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

import pytest

from gozon.reconcile import Account, Break, Order, Payment, Report, by_order, check_account, check_order, reconcile

T = TypeVar("T")
NOW = datetime.fromisoformat("2026-11-25T03:00:00+00:00")
HOUR = timedelta(hours=1)
BEFORE = NOW - timedelta(minutes=1)


def order(id: int, status: str, amount: int = 100, user_id: int = 1, created_at: datetime = BEFORE) -> Order:
    return Order(id, user_id, amount, status, created_at)


def payment(order_id: int, status: str, debits: int = 0, debited: int | None = None, user_id: int = 1,
            amount: int = 100, created_at: datetime = BEFORE) -> Payment:
    debited = amount * debits if debited is None else debited
    return Payment(order_id, user_id, amount, status, created_at, debits, debited, user_id if debits else None)


def kinds(order_: Order | None, payment_: Payment | None) -> list[str]:
    return [b.kind for b in check_order(order_, payment_, taken_at=NOW, stale_after=HOUR)]


async def stream(rows: Iterable[T]) -> AsyncIterator[T]:
    for row in rows:
        yield row


@pytest.mark.anyio
async def test_the_merge_pairs_rows_of_one_order_and_leaves_either_side_alone() -> None:
    orders = [order(1, "finished"), order(3, "new"), order(4, "new"), order(9, "new")]
    payments = [payment(1, "success", 1), payment(2, "failed"), payment(4, "failed"), payment(10, "failed")]
    pairs = [(o and o.id, p and p.order_id) async for o, p in by_order(stream(orders), stream(payments))]
    assert pairs == [(1, 1), (None, 2), (3, None), (4, 4), (9, None), (None, 10)]
    assert [pair async for pair in by_order(stream([]), stream([]))] == []


def test_settled_orders_that_agree_with_their_payments_are_no_break() -> None:
    assert kinds(order(1, "finished"), payment(1, "success", debits=1)) == []
    assert kinds(order(2, "cancelled"), payment(2, "failed")) == []


def test_orders_in_flight_are_no_break() -> None:
    assert kinds(order(1, "new"), None) == []
    assert kinds(order(1, "new"), payment(1, "success", debits=1)) == []  # the result is on its way
    # A payment begun after the orders snapshot may be for an order created since.
    assert kinds(None, payment(7, "failed", created_at=NOW)) == []


@pytest.mark.parametrize(("order_", "payment_", "expected"), [
    pytest.param(order(1, "finished"), None, ["finished_without_debit"], id="finished-no-payment"),
    pytest.param(order(1, "finished"), payment(1, "success"), ["finished_without_debit"], id="finished-no-debit"),
    pytest.param(order(1, "finished"), payment(1, "success", debits=2), ["finished_without_debit"],
                 id="finished-two-debits"),
    pytest.param(order(1, "finished"), payment(1, "failed", debits=1), ["payment_status_mismatch"],
                 id="finished-payment-failed"),
    pytest.param(order(1, "finished", amount=100), payment(1, "success", debits=1, debited=60),
                 ["debit_amount_mismatch"], id="finished-debit-of-another-amount"),
    pytest.param(order(1, "finished", user_id=1), payment(1, "success", debits=1)._replace(debited_user=2),
                 ["debit_account_mismatch"], id="finished-debit-from-another-user"),
    pytest.param(order(1, "cancelled"), payment(1, "failed", debits=1), ["cancelled_with_debit"],
                 id="cancelled-debited"),
    pytest.param(order(1, "cancelled"), payment(1, "success", debits=1),
                 ["cancelled_with_debit", "payment_status_mismatch"], id="cancelled-paid"),
    pytest.param(order(1, "cancelled"), payment(1, "success"), ["payment_status_mismatch"],
                 id="cancelled-payment-success"),
    pytest.param(order(1, "cancelled"), None, ["payment_status_mismatch"], id="cancelled-no-payment"),
    pytest.param(None, payment(7, "failed"), ["payment_without_order"], id="payment-no-order"),
    pytest.param(None, payment(8, "success", debits=1), ["debit_without_order"], id="debit-no-order"),
    pytest.param(order(1, "new", created_at=NOW - 2 * HOUR), None, ["stale_new_order"], id="new-for-two-hours"),
])
def test_each_kind_of_break(order_: Order | None, payment_: Payment | None, expected: list[str]) -> None:
    assert kinds(order_, payment_) == expected


def test_an_account_is_its_deposits_minus_its_debits_and_never_below_zero() -> None:
    assert check_account(Account(1, 10, 800, 1000, 200)) == []
    assert [b.kind for b in check_account(Account(2, 20, 801, 1000, 200))] == ["balance_mismatch"]
    assert [b.kind for b in check_account(Account(3, 30, -5, 10, 15))] == ["negative_balance"]
    found = check_account(Account(4, 40, -5, 0, 0))
    assert [b.kind for b in found] == ["balance_mismatch", "negative_balance"]
    assert found[0].line() == ("balance_mismatch account 4 (user 40): expected balance 0 (deposits 0 - debits 0),"
                               " found balance -5")


@pytest.mark.anyio
async def test_a_run_counts_what_it_read_and_reports_each_break_as_found() -> None:
    seen: list[Break] = []
    report = await reconcile(
        stream([order(1, "finished"), order(2, "finished", amount=50), order(3, "new", created_at=NOW - 3 * HOUR)]),
        stream([payment(1, "success", debits=1), payment(2, "success", amount=50)]),
        stream([Account(1, 1, 900, 1000, 100), Account(2, 2, 0, 0, 0)]),
        taken_at=NOW, stale_after=HOUR, on_break=seen.append)
    assert (report.orders, report.payments, report.accounts) == (3, 2, 2)
    assert not report.ok
    assert seen == report.breaks
    assert [b.line() for b in seen] == [
        "finished_without_debit order 2 (user 1): expected 1 debit of 50, found 0 debits",
        "stale_new_order order 3 (user 1): expected finished or cancelled within 60 min, found new for 180 min,"
        " no payment",
    ]
    assert report.summary() == ("reconcile: 2 breaks in 3 orders and 2 accounts"
                                " (finished_without_debit 1, stale_new_order 1)")
    document = json.loads(report.to_json())
    assert document["ok"] is False
    assert document["checked"] == {"orders": 3, "payments": 2, "accounts": 2}
    assert document["counts"]["finished_without_debit"] == 1 and sum(document["counts"].values()) == 2
    assert document["breaks"][0] == {"kind": "finished_without_debit", "order_id": 2, "account_id": None,
                                     "user_id": 1, "expected": "1 debit of 50", "found": "0 debits"}


def test_a_clean_report_says_so() -> None:
    report = Report(orders=10_240, payments=10_240, accounts=52)
    assert report.ok
    assert report.summary() == "reconcile: no breaks in 10,240 orders and 52 accounts"
    assert json.loads(report.to_json())["ok"] is True
