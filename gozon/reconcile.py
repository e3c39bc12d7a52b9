"""`gozon reconcile`: the two databases read against each other and against the
invariants of spec §5, with no I/O here — the rows come in as async streams
(`gozon.db.reconcile` reads them) and each break goes out as it is found.

Orders and payments are streamed in order of order id and merged like a sorted join,
so memory stays flat however many rows there are. The orders database is read first
and the payments database after it: whatever an order's row says was settled had its
payment committed before, so the later payments snapshot holds it. The one thing the
later snapshot may hold that the earlier cannot is a payment for an order created
since; a payment begun after the orders snapshot was taken is therefore not asked for
its order. An order still `new` is in flight and judged only by its age.

Kinds of break, by what they compare:

    finished_without_debit    a finished order without exactly one debit
    cancelled_with_debit      a cancelled order with a debit
    payment_without_order     a payments row whose order does not exist
    debit_without_order       the same, with a debit: money taken for no order
    stale_new_order           an order `new` for longer than `stale_after`
    debit_amount_mismatch     a finished order's debit is not its amount
    debit_account_mismatch    a finished order's debit came from another user's account
    payment_status_mismatch   the payment's status is not the order's final one
                              (finished ⇔ success, cancelled ⇔ failed)
    balance_mismatch          an account's balance is not its deposits minus its debits
    negative_balance          an account's balance is below zero

Together the per-order checks and `balance_mismatch` give spec §5.2's form (balance =
deposits − amounts of finished orders): every debit is a finished order's, of its amount.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import msgspec

KINDS = (
    "finished_without_debit", "cancelled_with_debit", "payment_without_order", "debit_without_order",
    "stale_new_order", "debit_amount_mismatch", "debit_account_mismatch", "payment_status_mismatch",
    "balance_mismatch", "negative_balance",
)
# A broken deploy can break every row: the JSON lists this many breaks, counts them all.
MAX_LISTED = 10_000


class Order(NamedTuple):
    id: int
    user_id: int
    amount: int
    status: str
    created_at: datetime


class Payment(NamedTuple):
    """A payments row and its debits (the ledger allows one per order; counted anyway)."""
    order_id: int
    user_id: int
    amount: int
    status: str
    created_at: datetime
    debits: int
    debited: int  # the sum of their amounts
    debited_user: int | None  # the user whose account a debit came from


class Account(NamedTuple):
    id: int
    user_id: int
    balance: int
    deposits: int  # the sums of the ledger's rows of each kind
    debits: int


class Break(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    order_id: int | None = None
    account_id: int | None = None
    user_id: int | None = None
    expected: str
    found: str

    def line(self) -> str:
        about = f"order {self.order_id}" if self.order_id is not None else f"account {self.account_id}"
        user = f" (user {self.user_id})" if self.user_id is not None else ""
        return f"{self.kind} {about}{user}: expected {self.expected}, found {self.found}"


class Report(msgspec.Struct, kw_only=True):
    orders: int = 0
    payments: int = 0
    accounts: int = 0
    counts: dict[str, int] = msgspec.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    breaks: list[Break] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def add(self, found: Break) -> None:
        self.counts[found.kind] += 1
        if len(self.breaks) < MAX_LISTED:
            self.breaks.append(found)

    def summary(self) -> str:
        total = sum(self.counts.values())
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in self.counts.items() if n)
        return (f"reconcile: {f'{total:,}' if total else 'no'} break{'' if total == 1 else 's'}"
                f" in {self.orders:,} orders and {self.accounts:,} accounts" + (f" ({kinds})" if kinds else ""))

    def to_json(self) -> bytes:
        return msgspec.json.encode({
            "ok": self.ok, "breaks": self.breaks, "counts": self.counts,
            "checked": {"orders": self.orders, "payments": self.payments, "accounts": self.accounts},
        })


async def reconcile(orders: AsyncIterable[Order], payments: AsyncIterable[Payment],
                    accounts: AsyncIterable[Account], *, taken_at: datetime, stale_after: timedelta,
                    on_break: Callable[[Break], None] = lambda _: None) -> Report:
    """Check every order against its payment, then every account against its ledger.
    `orders` and `payments` come in order of order id; `taken_at` is when the orders
    snapshot began (by the orders database's clock)."""
    report = Report()

    def found(each: Break) -> None:
        report.add(each)
        on_break(each)

    async for order, payment in by_order(orders, payments):
        report.orders += order is not None
        report.payments += payment is not None
        for each in check_order(order, payment, taken_at=taken_at, stale_after=stale_after):
            found(each)
    async for account in accounts:
        report.accounts += 1
        for each in check_account(account):
            found(each)
    return report


async def by_order(orders: AsyncIterable[Order],
                   payments: AsyncIterable[Payment]) -> AsyncIterator[tuple[Order | None, Payment | None]]:
    """Merge two streams sorted by order id into pairs of the same order (either side
    None where the other database has no row)."""
    orders_, payments_ = aiter(orders), aiter(payments)
    order, payment = await anext(orders_, None), await anext(payments_, None)
    while order is not None or payment is not None:
        if payment is None or (order is not None and order.id < payment.order_id):
            yield order, None
            order = await anext(orders_, None)
        elif order is None or payment.order_id < order.id:
            yield None, payment
            payment = await anext(payments_, None)
        else:
            yield order, payment
            order, payment = await anext(orders_, None), await anext(payments_, None)


def check_order(order: Order | None, payment: Payment | None, *,
                taken_at: datetime, stale_after: timedelta) -> list[Break]:
    if order is None:
        assert payment is not None
        if payment.created_at >= taken_at:  # its order may be younger than the orders snapshot
            return []
        kind = "debit_without_order" if payment.debits else "payment_without_order"
        return [Break(kind=kind, order_id=payment.order_id, user_id=payment.user_id,
                      expected="an order in the orders database", found=f"none, but {_paid(payment)}")]
    about = {"order_id": order.id, "user_id": order.user_id}
    if order.status == "new":
        age = taken_at - order.created_at
        if age <= stale_after:
            return []
        return [Break(kind="stale_new_order", **about, expected=f"finished or cancelled within {_minutes(stale_after)}",
                      found=f"new for {_minutes(age)}" + (f", {_paid(payment)}" if payment else ", no payment"))]
    breaks = []
    debits = payment.debits if payment else 0
    if order.status == "finished":
        if debits != 1:
            breaks.append(Break(kind="finished_without_debit", **about, expected=f"1 debit of {order.amount}",
                                found=f"{debits} debits" if payment else "no payment"))
        elif payment.debited != order.amount:
            breaks.append(Break(kind="debit_amount_mismatch", **about, expected=f"a debit of {order.amount}",
                                found=f"a debit of {payment.debited}"))
        elif payment.debited_user != order.user_id:
            breaks.append(Break(kind="debit_account_mismatch", **about,
                                expected=f"a debit from user {order.user_id}'s account",
                                found=f"a debit from user {payment.debited_user}'s account"))
    elif debits:
        breaks.append(Break(kind="cancelled_with_debit", **about, expected="no debit",
                            found=f"a debit of {payment.debited}" if debits == 1
                            else f"{debits} debits of {payment.debited} in all"))
    final = {"finished": "success", "cancelled": "failed"}[order.status]
    # A finished order with no payment at all was reported above, as missing its debit.
    status = payment.status if payment else "none" if order.status == "cancelled" else final
    if status != final:
        breaks.append(Break(kind="payment_status_mismatch", **about, expected=f"payment {final}",
                            found=f"payment {status}"))
    return breaks


def check_account(account: Account) -> list[Break]:
    about = {"account_id": account.id, "user_id": account.user_id}
    breaks = []
    if account.balance != account.deposits - account.debits:
        breaks.append(Break(kind="balance_mismatch", **about,
                            expected=f"balance {account.deposits - account.debits}"
                                     f" (deposits {account.deposits} - debits {account.debits})",
                            found=f"balance {account.balance}"))
    if account.balance < 0:
        breaks.append(Break(kind="negative_balance", **about, expected="balance >= 0",
                            found=f"balance {account.balance}"))
    return breaks


def _paid(payment: Payment) -> str:
    debit = f", debited {payment.debited}" if payment.debits else ", no debit"
    return f"payment {payment.status}{debit}"


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:,.0f} min"
