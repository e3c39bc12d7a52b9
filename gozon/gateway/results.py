"""The gateway's results consumer: payment results from its own durable queue on the
fanout go into the hub's bounded `results` mailbox (a full mailbox holds back the
broker's deliveries rather than growing)."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from gozon.amqp.consumer import Delivery, Handler
from gozon.errors import Transient
from gozon.gateway.hub import Hub
from gozon.messages import PaymentResult


class HubStopped(Transient):
    """The hub takes no more results: the process is stopping."""


def payment_result(hub: Hub) -> Handler[PaymentResult]:
    async def handle(deliveries: Sequence[Delivery[PaymentResult]]) -> None:
        for delivery in deliveries:
            try:
                await hub.results.put((delivery.body, delivery.trace_id))
            except anyio.ClosedResourceError:
                # The hub is stopping: nobody here to tell. Unacked, the results wait in
                # the queue for this replica's next start.
                raise HubStopped from None

    return handle
