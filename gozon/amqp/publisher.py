"""Confirmed publishing: persistent messages carrying their own message_id, trace id
and type, sent together on one channel so their confirms pipeline; a message counts as
published only once the broker acked it.

Each message that is not acked is either *refused for good* — returned as unroutable
(mandatory, on a channel opened with `on_return_raises`): no queue is bound to where it
goes, so sending it again cannot help — or not confirmed *for now* (connection or
channel lost, timeout, nack), to be sent again later. A nack is "for now": RabbitMQ
nacks when a queue cannot take the message at the moment (full under `reject-publish`,
no quorum, an internal error), and a correct publisher retries it."""

from __future__ import annotations

from collections.abc import Sequence

import aio_pika
import anyio
import msgspec
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import PublishError

from gozon.messages import DEFAULT_EXCHANGE, Envelope
from gozon.runtime.tasks import task_group

CONFIRM_TIMEOUT = 10.0


class Published(msgspec.Struct, frozen=True):
    """How one `publish_confirmed` went, by position in the envelopes given."""

    confirmed: list[int]
    # Position → why the broker refuses it for good.
    refused: dict[int, str]
    # The first failure that may pass (the rest not confirmed is to send again later).
    error: BaseException | None


def to_amqp(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.body,
        message_id=str(envelope.message_id),
        correlation_id=envelope.trace_id,
        type=envelope.message_type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def refusal(returned: PublishError) -> str:
    """Why the broker returned a message, e.g. "unroutable: 312 NO_ROUTE (exchange '',
    routing key 'nowhere')"."""
    frame = returned.frame
    return (f"unroutable: {frame.reply_code} {frame.reply_text}"
            f" (exchange {frame.exchange!r}, routing key {frame.routing_key!r})")


async def publish_confirmed(channel: AbstractChannel, envelopes: Sequence[Envelope]) -> Published:
    """Publish `envelopes` at once and wait for their confirms (or returns)."""
    return await publish_messages(channel, [(e.exchange, e.routing_key, to_amqp(e)) for e in envelopes])


async def publish_messages(channel: AbstractChannel, messages: Sequence[tuple[str, str, aio_pika.Message]]) -> Published:
    """Publish (exchange, routing key, message) triples at once and wait for their
    confirms (or returns)."""
    exchanges: dict[str, AbstractExchange] = {}
    for name in {exchange for exchange, _, _ in messages}:
        exchanges[name] = (channel.default_exchange if name == DEFAULT_EXCHANGE
                           else await channel.get_exchange(name, ensure=False))

    confirmed: list[int] = []
    refused: dict[int, str] = {}
    errors: list[BaseException] = []

    async def publish(position: int, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
        try:
            with anyio.fail_after(CONFIRM_TIMEOUT):
                # mandatory: the broker returns what it cannot route instead of dropping it.
                await exchanges[exchange].publish(message, routing_key=routing_key, mandatory=True)
        except PublishError as exc:
            refused[position] = refusal(exc)
        except Exception as exc:  # reported to the caller, who keeps it pending
            errors.append(exc)
        else:
            confirmed.append(position)

    async with task_group() as tg:
        for position, (exchange, routing_key, message) in enumerate(messages):
            tg.start_soon(publish, position, exchange, routing_key, message)
    return Published(sorted(confirmed), dict(sorted(refused.items())), errors[0] if errors else None)
