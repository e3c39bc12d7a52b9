"""Hostile messages, as a foreign producer publishes them raw (`helpers.publish_raw`):
no message id or one that is not a UUID, NUL bytes and invalid UTF-8 in every property,
headers the client cannot decode, 1 MiB bodies, bodies of the wrong shape or out of
range. Each must end in its queue's `.dlq` with its reason (spec §4), and none may cost
a consumer its connection.

A test finds each message among the dead letters by its message id (kept in the
header `x-original-message-id`) or, where it has none that is a UUID, by a token its
body carries (a dead letter's body is the original's, byte for byte). A body of the right shape names
a `Known` order under other terms than its own, so that even a message whose properties
are tolerated (NUL bytes in a trace id) is poison — to the handler, which checks a
message against what it is about — and can never charge or settle anything.
"""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass

from gozon.messages import MAX_AMOUNT, MAX_ID, ORDERS_QUEUE, PAYMENT_EVENTS, PAYMENTS_RESULTS_QUEUE
from tests.integration.helpers import publish_raw, raw_properties, raw_table

MiB = 1 << 20
# Bytes that are not UTF-8 (an invalid start byte, a truncated sequence, a surrogate).
NOT_UTF8 = b"\xff\xfe-\xc3(-\xed\xa0\x80"


@dataclass(frozen=True)
class Known:
    """An order both services know (created and paid, or at least requested)."""

    order_id: int
    user_id: int
    amount: int


@dataclass(frozen=True)
class Hostile:
    name: str
    queue: str  # the queue it reaches, whose .dlq it must end in
    body: bytes
    properties: bytes
    reason: str  # what its x-error must say
    exchange: str = ""
    routing_key: bytes | None = None  # None: the queue's name (default exchange)
    message_id: str | None = None  # its message id, if that is a UUID
    token: str = ""  # else a token its body carries

    def is_(self, letter) -> bool:
        """Whether the dead letter `letter` is this message's."""
        if self.message_id is not None:
            return _text((letter.headers or {}).get("x-original-message-id")) == self.message_id
        return self.token.encode() in letter.body

    async def publish(self) -> None:
        await publish_raw(self.queue if self.routing_key is None else self.routing_key, self.body,
                          self.properties, exchange=self.exchange)


def _tag(queue: str) -> str:
    return "payment_requested" if queue == ORDERS_QUEUE else "payment_result"


def _other_terms(queue: str, known: Known, token: str) -> dict:
    """A well-formed body about `known` that its handler refuses (other amount)."""
    body = {"type": _tag(queue), "order_id": known.order_id, "user_id": known.user_id, "amount": known.amount + 1}
    if queue != ORDERS_QUEUE:
        body["status"] = "success"
    return body | {"hostile": token}


def _reason_for_terms(queue: str) -> str:
    return "this request names" if queue == ORDERS_QUEUE else "does not match"


def hostile_messages(queue: str, known: Known) -> list[Hostile]:
    """Every kind of hostile message for `queue` (orders_queue or payments_results_queue)."""
    made: list[Hostile] = []

    def add(name: str, *, reason: str, body: dict | bytes | None = None, **properties: object) -> None:
        token = f"hostile-{len(made)}-{uuid.uuid4().hex[:8]}"
        if body is None:
            raw_body = json.dumps(_other_terms(queue, known, token)).encode()
        elif isinstance(body, dict):
            raw_body = json.dumps(body | {"hostile": token}).encode()
        else:
            raw_body = body
        message_id = str(uuid.uuid4())
        props = {"content_type": "application/json", "delivery_mode": 2, "message_id": message_id,
                 "correlation_id": "hostile-trace", "message_type": _tag(queue)}
        props.update(properties)
        identified = {"message_id": message_id} if props["message_id"] == message_id else {"token": token}
        assert "token" not in identified or isinstance(body, dict | None), f"{name}: no way to find it"
        made.append(Hostile(name, queue, raw_body, raw_properties(**{k: v for k, v in props.items() if v is not None}),
                            reason, **identified))

    terms = _reason_for_terms(queue)
    # The message id.
    add("no message_id", message_id=None, reason="message_id is not a UUID: None")
    add("message_id not a UUID", message_id="order-1", reason="message_id is not a UUID: order-1")
    add("message_id of NUL bytes", message_id=b"\0" * 36, reason="message_id is not a UUID")
    add("message_id of 255 bytes", message_id="7" * 255, reason="message_id is not a UUID")
    add("empty message_id", message_id="", reason="message_id is not a UUID")
    # NUL bytes in every property a client decodes (tolerated: the body decides).
    add("NUL bytes in every property", reason=terms, content_type="application/json\0", content_encoding="\0",
        correlation_id="trace\0id", reply_to="\0", message_type=_tag(queue), app_id="\0app", priority=0,
        headers=raw_table((b"\0key", b"S" + _long(b"\0value")), (b"k", b"x" + _long(b"\0\xff"))))
    add("NUL bytes in the trace id", reason=terms, correlation_id="\0" * 16)
    add("a trace id of 255 bytes", reason=terms, correlation_id="t" * 255)
    # Properties that are not UTF-8: no client decodes them as sent.
    for name in ("content_type", "content_encoding", "correlation_id", "reply_to", "message_id", "message_type",
                 "app_id"):
        add(f"{name} not UTF-8", reason=f"{name} is not UTF-8", **{name: NOT_UTF8})
    add("every property not UTF-8", reason="content_type is not UTF-8",
        **{name: NOT_UTF8 for name in ("content_type", "content_encoding", "correlation_id", "reply_to", "message_id",
                                       "message_type", "app_id")})
    add("a header key not UTF-8", reason="headers cannot be decoded",
        headers=raw_table((b"x-" + NOT_UTF8, b"S" + _long(b"ok"))))
    add("a header value not UTF-8", reason=terms,  # pamqp keeps such a value as bytes: tolerated
        headers=raw_table((b"x-value", b"S" + _long(NOT_UTF8))))
    add("a header nested 2000 deep", reason="headers cannot be decoded", headers=_nested(2000))
    # (A delivery_mode other than 1 or 2, an expiration not a number: the broker refuses them.)
    add("a timestamp past year 9999", reason="timestamp cannot be decoded", timestamp=2**64 - 1)
    add("a forged undecodable mark", reason="properties the client cannot decode: forged",
        headers={"x-gozon-undecodable": "forged"})
    # The type property and the body.
    other_tag = "payment_result" if queue == ORDERS_QUEUE else "payment_requested"
    add("type of another message", message_type=other_tag, reason=f"type {other_tag} is not {_tag(queue)}")
    add("malformed JSON", body=b'{"order_id": 1,, }', reason="malformed")
    add("body not UTF-8", body=b'{"type": "' + NOT_UTF8 + b'"}', reason="Invalid UTF-8")
    add("body of NUL bytes", body=b"\0" * 64, reason="malformed")
    add("empty body", body=b"", reason="")
    add("JSON array", body=b'[1, 2, 3]', reason="Expected `object`, got `array`")
    add("1 MiB of garbage", body=b"\xff" * MiB, reason="")
    base = _other_terms(queue, known, "")
    base.pop("hostile")
    add("1 MiB JSON of the wrong shape", body=base | {"order_id": "1" * MiB}, reason="$.order_id")
    add("1 MiB JSON with a right shape", body=base | {"pad": "p" * MiB}, reason=terms)
    add("wrong type tag", body=base | {"type": other_tag}, reason=other_tag)
    add("missing field", body={k: v for k, v in base.items() if k != "amount"}, reason="amount")
    add("amount 0", body=base | {"amount": 0}, reason="$.amount")
    add("amount past the maximum", body=base | {"amount": MAX_AMOUNT + 1}, reason="$.amount")
    add("negative order_id", body=base | {"order_id": -1}, reason="$.order_id")
    add("order_id past 2^63", body=base | {"order_id": MAX_ID + 1}, reason="$.order_id")
    add("amount as a string", body=base | {"amount": "100"}, reason="$.amount")
    add("amount a float", body=base | {"amount": 1.5}, reason="$.amount")
    add("user_id null", body=base | {"user_id": None}, reason="$.user_id")
    if queue == PAYMENTS_RESULTS_QUEUE:
        add("status unknown", body=base | {"status": "maybe"}, reason="$.status")
        add("reason unknown", body=base | {"status": "failed", "reason": "whim"}, reason="$.reason")
    return made


def fanout_messages(known: Known) -> list[Hostile]:
    """Hostile results published to the fanout, as the payments relay publishes: they
    reach payments_results_queue (and every gateway's queue, whose poison is dropped)."""
    published = []
    for hostile in hostile_messages(PAYMENTS_RESULTS_QUEUE, known)[::4]:
        published.append(Hostile(f"{hostile.name}, through the fanout", hostile.queue, hostile.body,
                                 hostile.properties, hostile.reason, exchange=PAYMENT_EVENTS, routing_key=b"",
                                 message_id=hostile.message_id, token=hostile.token))
    message_id = str(uuid.uuid4())
    body = json.dumps(_other_terms(PAYMENTS_RESULTS_QUEUE, known, "routing key")).encode()
    props = raw_properties(content_type="application/json", delivery_mode=2, message_id=message_id,
                           correlation_id="hostile-trace", message_type="payment_result")
    # A fanout routes whatever the routing key: one that is not UTF-8 reaches the consumer.
    published.append(Hostile("routing key not UTF-8, through the fanout", PAYMENTS_RESULTS_QUEUE, body, props,
                             "routing_key is not UTF-8", exchange=PAYMENT_EVENTS, routing_key=NOT_UTF8,
                             message_id=message_id))
    return published


def _long(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def _nested(depth: int) -> bytes:
    """A headers table holding a table holding a table... `depth` deep."""
    table = raw_table()
    for _ in range(depth):
        table = raw_table((b"t", b"F" + table))
    return table


def _text(value: object) -> str:
    return value.decode(errors="backslashreplace") if isinstance(value, bytes | bytearray) else str(value)


def reason_of(letter) -> str:
    return _text((letter.headers or {}).get("x-error"))


def unaccounted(hostile: list[Hostile], letters: list) -> list[str]:
    """What is wrong with `letters` (a .dlq's messages) as the dead letters of `hostile`:
    a hostile message missing, there twice, not as it was sent, or without its reason."""
    problems = []
    for message in hostile:
        found = [letter for letter in letters if message.is_(letter)]
        if len(found) != 1:
            problems.append(f"{message.name}: {len(found)} dead letters")
            continue
        [letter] = found
        reason = reason_of(letter)
        if letter.body != message.body:
            problems.append(f"{message.name}: the dead letter's body is not the original's")
        if message.reason not in reason or reason in ("", "None"):
            problems.append(f"{message.name}: x-error {reason[:300]!r} does not say {message.reason!r}")
    return problems
