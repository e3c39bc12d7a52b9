"""The gateway's events consumer: payment results from its own exclusive queue on the
fanout go into the hub's bounded inbox (a full inbox holds back the broker's deliveries
rather than growing)."""

from __future__ import annotations

import anyio
import msgspec

from gozon.amqp.consumer import Delivery
from gozon.gateway.hub import Hub
from gozon.messages import PaymentResult

decoder = msgspec.json.Decoder(PaymentResult)


def handler(hub: Hub):
    async def handle(delivery: Delivery) -> None:
        try:
            await hub.inbox.put((delivery.body, delivery.trace_id))  # type: ignore[arg-type]
        except anyio.ClosedResourceError:
            pass  # the hub is stopping; this queue dies with the process anyway

    return handle
