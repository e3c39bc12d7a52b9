"""The messages on the wire between the services: msgspec Structs, JSON bodies.

The tag (`type` field in the body) equals the AMQP `type` property. Decoding is
strict: a body that does not match its type exactly is a poison message.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

MAX_ID = 2**63 - 1
MAX_AMOUNT = 10**12

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Amount = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]
PaymentStatus = Literal["success", "failed"]
Reason = Literal["insufficient_funds", "account_not_found"]


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
    def order_status(self) -> Literal["finished", "cancelled"]:
        return "finished" if self.status == "success" else "cancelled"


Message = PaymentRequested | PaymentResult

encoder = msgspec.json.Encoder()


def message_type(message: Message) -> str:
    return type(message).__struct_config__.tag  # type: ignore[return-value]
