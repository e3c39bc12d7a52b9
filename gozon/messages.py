"""The wire contract between the services: the messages (msgspec Structs, JSON bodies),
where each one goes, and the envelope that carries it through the outbox to RabbitMQ.

    PaymentRequested  orders → payments       default exchange, routing key orders_queue
    PaymentResult     payments → everyone     payment_events_fanout (bound: payments_results_queue
                                              for orders, one queue per gateway replica)

The tag (`type` field in the body) equals the AMQP `type` property. Decoding is
strict: a body that does not match its type exactly is a poison message.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

MAX_ID = 2**63 - 1
MAX_AMOUNT = 10**12

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Amount = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]
PaymentStatus = Literal["success", "failed"]
Reason = Literal["insufficient_funds", "account_not_found"]
OrderStatus = Literal["new", "finished", "cancelled"]

# Names of spec §4.
ORDERS_QUEUE = "orders_queue"
PAYMENT_EVENTS = "payment_events_fanout"
PAYMENTS_RESULTS_QUEUE = "payments_results_queue"
DEFAULT_EXCHANGE = ""


class Destination(msgspec.Struct, frozen=True):
    exchange: str
    routing_key: str


class PaymentRequested(msgspec.Struct, frozen=True, kw_only=True, tag="payment_requested"):
    """Orders → payments (orders_queue): charge this order once."""

    order_id: Id
    user_id: Id
    amount: Amount


class PaymentResult(msgspec.Struct, frozen=True, kw_only=True, tag="payment_result"):
    """Payments → everyone (payment_events_fanout): how the charge went."""

    order_id: Id
    user_id: Id
    amount: Amount
    status: PaymentStatus
    reason: Reason | None = None

    @property
    def order_status(self) -> OrderStatus:
        return "finished" if self.status == "success" else "cancelled"


Message = PaymentRequested | PaymentResult

DESTINATIONS: dict[type, Destination] = {
    PaymentRequested: Destination(DEFAULT_EXCHANGE, ORDERS_QUEUE),
    PaymentResult: Destination(PAYMENT_EVENTS, ""),
}

encoder = msgspec.json.Encoder()


def message_type(message: Message) -> str:
    return type(message).__struct_config__.tag  # type: ignore[return-value]


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """A message as it travels: its body encoded, the AMQP properties it is published
    with, and where it goes. The id is fixed when the outbox row is written, so every
    re-publish carries the same `message_id` and the receiving inbox skips repeats."""

    message_id: uuid.UUID
    message_type: str
    trace_id: str | None
    exchange: str
    routing_key: str
    body: bytes


def envelope(message: Message, trace_id: str | None) -> Envelope:
    """The envelope for `message`, with a new message id and its destination."""
    to = DESTINATIONS[type(message)]
    return Envelope(message_id=uuid.uuid4(), message_type=message_type(message), trace_id=trace_id,
                    exchange=to.exchange, routing_key=to.routing_key, body=encoder.encode(message))
