"""The order writer: one actor owns the writes of new orders. HTTP handlers hand it an
order and wait for the answer; it takes every order waiting (up to a batch), writes them
and their payment requests in one transaction, and answers each only after that commit.

A batch is never held back waiting for company: under light load an order is written
at once, under heavy load batches grow by themselves (group commit: one transaction,
one fsync and one NOTIFY for all of them)."""

from __future__ import annotations

import anyio
import msgspec

from gozon.db import Database
from gozon.errors import Transient
from gozon.orders import store
from gozon.orders.schemas import CreateOrder, Order
from gozon.runtime import Mailbox


class _Placement(msgspec.Struct):
    """An order on its way in, and the slot its answer goes to."""

    new: CreateOrder
    trace_id: str
    done: anyio.Event
    order: Order | None = None
    error: BaseException | None = None


class NotTaking(Transient):
    """The writer is not running (starting, or stopped): no order can be written now."""


class OrderWriter:
    def __init__(self, db: Database, *, batch: int) -> None:
        self.db = db
        self.batch = batch
        self._placements: Mailbox[_Placement] | None = None

    async def place(self, new: CreateOrder, trace_id: str) -> Order:
        """Write the order; returns it once committed (waits while the writer is busy).

        Raises:
            Transient: the database is down, or the writer is not running.
        """
        if self._placements is None:
            raise NotTaking("orders are not being taken right now")
        placement = _Placement(new, trace_id, anyio.Event())
        try:
            await self._placements.put(placement)
        except anyio.ClosedResourceError:
            raise NotTaking("orders are not being taken right now") from None
        await placement.done.wait()
        if placement.error is not None:
            raise placement.error
        assert placement.order is not None
        return placement.order

    async def run(self) -> None:
        """Write what comes in until `close()`, then what is still waiting, and return."""
        with Mailbox[_Placement](self.batch * 2) as placements:
            self._placements = placements
            try:
                async for first in placements:
                    await self._write([first, *placements.waiting(self.batch - 1)])
            finally:
                self._placements = None

    def close(self) -> None:
        """No more orders: the waiting ones are written, then `run` returns."""
        if self._placements is not None:
            self._placements.close()

    async def _write(self, batch: list[_Placement]) -> None:
        try:
            async with self.db.acquire() as con:
                orders = await store.create_orders(con, [(p.new, p.trace_id) for p in batch])
        except Exception as exc:  # told to every request of the batch (a 503, or a 500 for a bug)
            for placement in batch:
                placement.error = exc
        else:
            for placement, order in zip(batch, orders, strict=True):
                placement.order = order
        finally:
            for placement in batch:
                if placement.order is None and placement.error is None:  # cut short by the drain deadline
                    placement.error = NotTaking("the orders service stopped before the order was written")
                placement.done.set()
