"""The WebSocket hub: which connections belong to which user, and the fan-out of payment
results to them. Each connection has its own bounded queue drained by its own sender
task, so the hub never waits for a browser: a connection whose queue overflows is
closed, and every other connection goes on as before."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import anyio
import msgspec
import structlog

from gozon.messages import PaymentResult, Reason
from gozon.runtime import Mailbox
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.gateway")

_json = msgspec.json.Encoder()


class PaymentResultFrame(msgspec.Struct, frozen=True, kw_only=True, tag="payment_result"):
    order_id: int
    user_id: int
    amount: int
    status: Literal["success", "failed"]
    order_status: Literal["finished", "cancelled"]
    reason: Reason | None


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    pass


PONG = _json.encode(Pong()).decode()


class Outgoing(msgspec.Struct, frozen=True):
    text: str
    trace_id: str | None = None
    order_id: int | None = None


class Connection:
    def __init__(self, user_id: int, queue_size: int) -> None:
        self.user_id = user_id
        self.outgoing: Mailbox[Outgoing] = Mailbox(queue_size)
        # Set when the queue overflowed: the client is too slow and is to be closed.
        self.too_slow = anyio.Event()

    def offer(self, frame: Outgoing) -> bool:
        """Queue a frame; a full queue means the client is too slow: close it."""
        if self.outgoing.offer(frame):
            return True
        if not self.too_slow.is_set():
            log.warning("slow websocket client closed", user_id=self.user_id, queue_size=len(self.outgoing))
            self.too_slow.set()
            self.outgoing.close()
        return False


class Hub:
    """Owned by the gateway's supervisor (`with Hub(...) as hub:`), which closes its
    mailboxes when the process is done."""

    def __init__(self, *, queue_size: int, results_size: int = 256) -> None:
        self.queue_size = queue_size
        # Payment results from the results consumer, with their trace ids.
        self.results: Mailbox[tuple[PaymentResult, str | None]] = Mailbox(results_size)
        self._connections: defaultdict[int, set[Connection]] = defaultdict(set)

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *_: object) -> None:
        self.results.discard()
        for connections in self._connections.values():
            for connection in connections:
                connection.outgoing.discard()

    @property
    def connections(self) -> int:
        return sum(len(conns) for conns in self._connections.values())

    def register(self, user_id: int) -> Connection:
        connection = Connection(user_id, self.queue_size)
        self._connections[user_id].add(connection)
        return connection

    def unregister(self, connection: Connection) -> None:
        connections = self._connections.get(connection.user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._connections[connection.user_id]
        connection.outgoing.discard()

    def deliver(self, result: PaymentResult, trace_id: str | None) -> int:
        """Queue the result's frame for every connection of its user; returns how many."""
        frame = PaymentResultFrame(order_id=result.order_id, user_id=result.user_id, amount=result.amount,
                                   status=result.status, order_status=result.order_status, reason=result.reason)
        outgoing = Outgoing(_json.encode(frame).decode(), trace_id, result.order_id)
        queued = 0
        for connection in list(self._connections.get(result.user_id, ())):
            queued += connection.offer(outgoing)
        return queued

    async def run(self, stop: anyio.Event) -> None:
        """The hub actor: fan out what the results consumer puts in `results`."""
        async with task_group() as tg:

            async def close_on_stop() -> None:
                await stop.wait()
                self.results.close()

            tg.start_soon(close_on_stop)
            async for result, trace_id in self.results:
                with structlog.contextvars.bound_contextvars(trace_id=trace_id, order_id=result.order_id,
                                                            user_id=result.user_id):
                    queued = self.deliver(result, trace_id)
                    log.info("payment result fanned out", status=result.status, connections=queued)
            tg.cancel_scope.cancel()
