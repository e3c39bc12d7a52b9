"""Confirmed publishing: persistent messages carrying their own message_id, trace id
and type, sent together on one channel so their confirms pipeline; a message counts as
published only once the broker acked it (an unroutable one raises, it is not acked)."""

from __future__ import annotations

from collections.abc import Sequence

import aio_pika
import anyio
from aio_pika.abc import AbstractChannel, AbstractExchange

from gozon.messages import DEFAULT_EXCHANGE, Envelope
from gozon.runtime.tasks import task_group

CONFIRM_TIMEOUT = 10.0


def to_amqp(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.body,
        message_id=str(envelope.message_id),
        correlation_id=envelope.trace_id,
        type=envelope.message_type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_confirmed(channel: AbstractChannel,
                            envelopes: Sequence[Envelope]) -> tuple[list[int], BaseException | None]:
    """Publish `envelopes` at once and wait for their confirms.

    Returns the positions (in `envelopes`) the broker confirmed and the first error
    seen, if any; what was not confirmed is the caller's to send again later.
    """
    exchanges: dict[str, AbstractExchange] = {}
    for name in {e.exchange for e in envelopes}:
        exchanges[name] = (channel.default_exchange if name == DEFAULT_EXCHANGE
                           else await channel.get_exchange(name, ensure=False))

    confirmed: list[int] = []
    errors: list[BaseException] = []

    async def publish(position: int, envelope: Envelope) -> None:
        try:
            with anyio.fail_after(CONFIRM_TIMEOUT):
                await exchanges[envelope.exchange].publish(to_amqp(envelope), routing_key=envelope.routing_key)
        except Exception as exc:  # reported to the caller, who keeps it pending
            errors.append(exc)
        else:
            confirmed.append(position)

    async with task_group() as tg:
        for position, envelope in enumerate(envelopes):
            tg.start_soon(publish, position, envelope)
    return sorted(confirmed), (errors[0] if errors else None)
