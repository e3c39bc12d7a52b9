"""The wire contract, pinned: what each message is called on the wire, what it holds,
the bounds of each field, where it is sent, and what a result makes of its order."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from gozon import messages
from gozon.messages import (
    DESTINATIONS,
    MAX_AMOUNT,
    MAX_ID,
    Destination,
    PaymentRequested,
    PaymentResult,
    envelope,
    message_type,
)

REQUEST = PaymentRequested(order_id=1, user_id=2, amount=3)


def test_every_message_has_its_tag_fields_and_destination() -> None:
    assert {kind: (kind.__struct_config__.tag, kind.__struct_fields__) for kind in DESTINATIONS} == {
        PaymentRequested: ("payment_requested", ("order_id", "user_id", "amount")),
        PaymentResult: ("payment_result", ("order_id", "user_id", "amount", "status", "reason")),
    }
    assert DESTINATIONS == {
        PaymentRequested: Destination("", "orders_queue"),  # the default exchange: straight to the queue
        PaymentResult: Destination("payment_events_fanout", ""),
    }
    assert set(DESTINATIONS) == set(messages.Message.__args__)  # every message has a destination


def test_the_body_carries_the_tag_as_type() -> None:
    assert msgspec.json.decode(messages.encoder.encode(REQUEST)) == {
        "type": "payment_requested", "order_id": 1, "user_id": 2, "amount": 3}
    assert message_type(REQUEST) == "payment_requested"


@pytest.mark.parametrize(("field", "value"), [
    ("order_id", 0), ("order_id", MAX_ID + 1), ("user_id", -1), ("amount", 0), ("amount", MAX_AMOUNT + 1),
    ("amount", "100"), ("amount", 100.0), ("amount", True), ("order_id", None),
])
def test_out_of_range_or_mistyped_fields_do_not_decode(field: str, value: object) -> None:
    body = {"type": "payment_requested", "order_id": 1, "user_id": 1, "amount": 1} | {field: value}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.Decoder(PaymentRequested).decode(msgspec.json.encode(body))


def test_the_bounds_are_inclusive() -> None:
    decoded = msgspec.json.Decoder(PaymentRequested).decode(msgspec.json.encode(
        {"type": "payment_requested", "order_id": MAX_ID, "user_id": 1, "amount": MAX_AMOUNT}))
    assert (decoded.order_id, decoded.amount) == (2**63 - 1, 10**12)


@pytest.mark.parametrize("body", [
    {"type": "payment_result", "order_id": 1, "user_id": 1, "amount": 1, "status": "maybe"},
    {"type": "payment_result", "order_id": 1, "user_id": 1, "amount": 1, "status": "failed", "reason": "bored"},
    {"type": "payment_requested", "order_id": 1, "user_id": 1, "amount": 1},  # another message's tag
])
def test_a_result_with_an_unknown_status_reason_or_tag_does_not_decode(body: dict) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.Decoder(PaymentResult).decode(msgspec.json.encode(body))


@pytest.mark.parametrize(("status", "reason", "order_status"), [
    ("success", None, "finished"),
    ("failed", "insufficient_funds", "cancelled"),
    ("failed", "account_not_found", "cancelled"),
])
def test_a_result_settles_its_order_as_finished_or_cancelled(status, reason, order_status) -> None:
    result = PaymentResult(order_id=1, user_id=1, amount=1, status=status, reason=reason)
    assert result.order_status == order_status


def test_an_envelope_is_addressed_by_the_contract_with_a_fresh_id() -> None:
    result = PaymentResult(order_id=1, user_id=2, amount=3, status="success")
    first, second = envelope(result, "trace-1"), envelope(result, "trace-1")
    assert (first.exchange, first.routing_key, first.message_type, first.trace_id) == (
        "payment_events_fanout", "", "payment_result", "trace-1")
    assert msgspec.json.decode(first.body, type=PaymentResult) == result
    assert isinstance(first.message_id, uuid.UUID) and first.message_id != second.message_id
