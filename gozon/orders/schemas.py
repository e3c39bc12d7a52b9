"""The orders API's request and response bodies (the same types validate and document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from gozon.messages import Amount, Id, OrderStatus, Reason

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]

# The optional header of POST /orders: 1 to 255 printable ASCII characters.
IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


class CreateOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id
    amount: Amount


class OrdersQuery(msgspec.Struct, frozen=True):
    user_id: Id
    limit: Limit = 100
    before_id: Id | None = None


class OrderQuery(msgspec.Struct, frozen=True):
    id: Id


class Order(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: int
    user_id: int
    amount: int
    status: OrderStatus
    created_at: datetime
    reason: Reason | None = None
