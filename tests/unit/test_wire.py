"""`gozon.amqp.wire`: the frames of a connection, as aiormq's own frame reader decodes
them through `Frames`: those pamqp decodes pass byte for byte; a content header it
cannot decode (or aio-pika could not build a message from) comes out decodable, marked
`UNDECODABLE` with what was wrong; nothing raises."""

from __future__ import annotations

import asyncio
import struct

import pamqp.frame
import pytest
from aiormq.connection import FrameReceiver
from pamqp import commands
from pamqp.header import ContentHeader

from gozon.amqp.wire import UNDECODABLE, Frames

pytestmark = pytest.mark.anyio

NOT_UTF8 = b"\xff\xfe"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiormq's frame reader runs on asyncio only


def short(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def frame(kind: int, payload: bytes, channel: int = 1) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def header(properties: bytes, body_size: int = 2) -> bytes:
    return frame(2, struct.pack(">HHQ", 60, 0, body_size) + properties)


def properties(**raw: bytes) -> bytes:
    """Encoded basic properties, each value as it goes on the wire (after its flag)."""
    spec = commands.Basic.Properties
    flags = 0
    for name in raw:
        flags |= spec.flags[name]
    return struct.pack(">H", flags) + b"".join(raw[name] for name in spec.__slots__ if name in raw)


def deliver(routing_key: bytes = b"orders_queue", exchange: bytes = b"") -> bytes:
    return frame(1, struct.pack(">HH", 60, 60) + short(b"ctag") + struct.pack(">QB", 7, 0) + short(exchange)
                 + short(routing_key))


async def received(*frames: bytes) -> list:
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(frames))
    reader.feed_eof()
    return [f async for _, _, f in FrameReceiver(Frames(reader))]


async def through(*frames: bytes) -> bytes:
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(frames))
    reader.feed_eof()
    wrapped = Frames(reader)
    out = b""
    while not wrapped.at_eof():
        out += await wrapped.readexactly(1)
    return out


async def test_frames_pamqp_decodes_pass_byte_for_byte() -> None:
    good = [deliver(), pamqp.frame.marshal(ContentHeader(body_size=2, properties=commands.Basic.Properties(
                message_id="m", correlation_id="c", headers={"k": "v", "t": {"n": 1}}, delivery_mode=2)), 1),
            frame(3, b"{}"), pamqp.frame.marshal(commands.Basic.Ack(delivery_tag=3), 1),
            b"\x08\x00\x00\x00\x00\x00\x00\xce"]  # a heartbeat
    assert await through(*good) == b"".join(good)


@pytest.mark.parametrize("name", ["content_type", "content_encoding", "correlation_id", "reply_to", "message_id",
                                  "message_type", "user_id", "app_id", "cluster_id", "expiration"])
async def test_a_property_that_is_not_utf8_is_escaped_and_marked(name: str) -> None:
    value = b"1" + NOT_UTF8 if name == "expiration" else b"id-" + NOT_UTF8
    _, content, body = await received(deliver(), header(properties(**{name: short(value)})), frame(3, b"{}"))
    got = content.properties
    assert UNDECODABLE in got.headers and name in got.headers[UNDECODABLE], got.headers
    if name != "expiration":  # (one that is not a number is dropped: aio-pika could not read it)
        assert getattr(got, name) == value.decode(errors="backslashreplace")
    assert content.body_size == 2 and body.value == b"{}"


async def test_what_could_be_decoded_is_kept_beside_the_mark() -> None:
    _, content, _ = await received(deliver(), header(properties(
        content_type=short(b"application/json"), headers=_table(b"k", b"S" + _long(b"v")), delivery_mode=b"\x02",
        correlation_id=short(NOT_UTF8), message_id=short(b"abc"))), frame(3, b"{}"))
    got = content.properties
    assert (got.content_type, got.delivery_mode, got.message_id) == ("application/json", 2, "abc")
    assert got.headers["k"] == "v"
    assert got.headers[UNDECODABLE] == "correlation_id is not UTF-8: b'\\xff\\xfe'"
    assert got.correlation_id == "\\xff\\xfe"


def _long(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def _table(key: bytes, value: bytes) -> bytes:
    entry = short(key) + value
    return struct.pack(">I", len(entry)) + entry


def _nested(depth: int) -> bytes:
    table = struct.pack(">I", 0)
    for _ in range(depth):
        table = _table(b"t", b"F" + table)
    return table


@pytest.mark.parametrize(("raw", "says"), [
    (lambda: properties(headers=_table(b"x-" + NOT_UTF8, b"S" + _long(b"v"))), "headers cannot be decoded"),
    (lambda: properties(headers=_table(b"k", b"?" + _long(b"v"))), "headers cannot be decoded: ValueError"),
    (lambda: properties(headers=_nested(3000)), "headers cannot be decoded: RecursionError"),
    (lambda: properties(timestamp=struct.pack(">Q", 2**64 - 1)), "timestamp cannot be decoded"),
    (lambda: properties(delivery_mode=b"\x07"), "delivery_mode is 7, not 1 or 2"),
    (lambda: properties(expiration=short(b"soon")), "expiration is not a number"),
    (lambda: properties(message_id=b"\x40abc"), "properties cannot be decoded"),  # says 64 bytes, has 3
    (lambda: b"\x00", "properties cannot be decoded"),  # a flag word cut short
])
async def test_properties_no_client_could_take_are_marked_and_nothing_raises(raw, says: str) -> None:
    _, content, body = await received(deliver(), header(raw()), frame(3, b"{}"))
    assert says in content.properties.headers[UNDECODABLE]
    assert content.body_size == 2 and body.value == b"{}"


async def test_a_routing_key_that_is_not_utf8_is_escaped_and_its_message_marked() -> None:
    good = pamqp.frame.marshal(ContentHeader(body_size=2, properties=commands.Basic.Properties(message_id="m")), 1)
    method, content, _, again, clean, _ = await received(
        deliver(routing_key=b"k" + NOT_UTF8), good, frame(3, b"{}"), deliver(), good, frame(3, b"{}"))
    assert method.routing_key == "k\\xff\\xfe" and method.delivery_tag == 7 and method.consumer_tag == "ctag"
    assert content.properties.headers[UNDECODABLE] == "routing_key is not UTF-8: b'k\\xff\\xfe'"
    assert content.properties.message_id == "m"
    # The mark was that message's only: the next one on the channel is as it came.
    assert again.routing_key == "orders_queue" and clean.properties.headers is None


async def test_a_broker_refusing_our_protocol_is_told_by_aiormq() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"AMQP\x00\x00\x09\x01")
    reader.feed_eof()
    with pytest.raises(Exception, match="Unexpected AMQP protocol header"):
        await FrameReceiver(Frames(reader)).get_frame()
