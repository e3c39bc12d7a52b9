"""The bytes from RabbitMQ, made safe to decode before aiormq decodes them.

A producer can publish properties that no AMQP client of ours can decode: RabbitMQ
passes a message's content header on as it came, and checks neither that its short
strings are UTF-8 nor that its headers table or timestamp make sense. aiormq decodes
each frame with pamqp in the one task that reads its connection; a frame pamqp cannot
decode (a `correlation_id` that is not UTF-8, a header key that is not, a header of an
unknown type, a timestamp past the year 9999...) ends that task, and with it the
connection and every channel on it. The broker puts the message back in its queue and
delivers it to the next connection, which it kills the same way: a loop that only the
quorum queue's delivery limit ends (`topology.DELIVERY_LIMIT` reconnects later, in the
`.dlq` without a reason), meanwhile every consumer and publisher of the process lose
their channels again and again.

aiormq has a seam for this: the `TransportFactory` that opens a connection's socket.
Ours hands aiormq a stream that yields whole frames, each looked at first:

* a content header is walked property by property with pamqp's own decoders (and the
  checks aio-pika makes when it builds the message: a `delivery_mode` of 1 or 2, a
  numeric `expiration`). One that passes is handed on byte for byte. One that does not
  is re-encoded: a string that is not UTF-8 with its bytes escaped (`\\xff`), a headers
  table or timestamp that cannot be decoded dropped, and the header `UNDECODABLE`
  added, naming what was wrong;
* a `Basic.Deliver` / `Basic.Get-Ok` / `Basic.Return` whose exchange or routing key (the
  producer's) is not UTF-8 gets them escaped, and its content header the same mark.

The consumer dead-letters a message carrying `UNDECODABLE` as poison, with that reason
(`consumer.Consumer`): such a message costs no reconnect at all, and nothing is patched
in aiormq or pamqp. A header a producer sets to that name itself only gets its own
message dead-lettered. (Other ways out were weighed: the broker's delivery limit alone
costs ten reconnects and loses the reason; a second, lenient AMQP client to fetch the
message after the connection died costs one reconnect and a protocol implementation;
patching pamqp's decoder would change it for every user of the library in the process.)
"""

from __future__ import annotations

import struct
from typing import Any

import aio_pika
import pamqp.decode
import pamqp.frame
from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from pamqp import commands

# The header that marks a message whose properties could not be decoded as sent; its
# value says what was wrong.
UNDECODABLE = "x-gozon-undecodable"


def header_text(value: object) -> str:
    """A header's value as text: a byte string (a long string, as aiormq decodes it) with
    what is not UTF-8 escaped."""
    return value.decode(errors="backslashreplace") if isinstance(value, bytes | bytearray) else str(value)

_METHOD, _HEADER = 1, 2
_FRAME_END = b"\xce"

# The content-carrying methods (class Basic) and their fields: "s" a short string the
# producer chose (checked), a number the bytes of a field we leave alone.
_DELIVER, _GET_OK, _RETURN = (60, 60), (60, 71), (60, 50)
_METHOD_FIELDS: dict[tuple[int, int], tuple[tuple[str, str | int], ...]] = {
    _DELIVER: (("consumer_tag", "s"), ("delivery_tag", 8), ("redelivered", 1), ("exchange", "s"),
               ("routing_key", "s")),
    _GET_OK: (("delivery_tag", 8), ("redelivered", 1), ("exchange", "s"), ("routing_key", "s"),
              ("message_count", 4)),
    _RETURN: (("reply_code", 2), ("reply_text", "s"), ("exchange", "s"), ("routing_key", "s")),
}

_PROPERTIES = commands.Basic.Properties
# (name, flag bit, AMQP type) of each basic property, in wire order.
_PROPERTY_FIELDS = [(name, _PROPERTIES.flags[name], getattr(_PROPERTIES, f"_{name}"))
                    for name in _PROPERTIES.__slots__]
_HEADERS_FLAG = _PROPERTIES.flags["headers"]


class Connection(aio_pika.Connection):
    """aio-pika's connection, on our transport (`aio_pika.connect(connection_class=...)`)."""

    def __init__(self, url: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(url, *args, **kwargs)
        self.kwargs["transport_factory"] = Transport(tls=self.url.scheme == "amqps")


class Transport(TransportFactory):
    """aiormq's own transport (TCP or TLS), its incoming bytes read through `Frames`."""

    def __init__(self, *, tls: bool) -> None:
        self._base = TLSTransportFactory() if tls else TCPTransportFactory()

    async def create(self, url: Any, **kwargs: Any) -> tuple[Any, Any]:
        reader, writer = await self._base.create(url, **kwargs)
        return Frames(reader), writer


class Frames:
    """Stands in for the connection's `asyncio.StreamReader`, as aiormq's frame reader
    uses it (`at_eof`, `readexactly`, `read`): reads whole frames from it and passes
    them on, each content header and content-carrying method made decodable first."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._ready = bytearray()
        # What was wrong with the method a channel's next content header belongs to.
        self._problems: dict[int, list[str]] = {}

    def at_eof(self) -> bool:
        return not self._ready and self._reader.at_eof()

    async def readexactly(self, n: int) -> bytes:
        while len(self._ready) < n:
            await self._next_frame()
        data = bytes(self._ready[:n])
        del self._ready[:n]
        return data

    async def read(self, n: int = -1) -> bytes:
        if not self._ready:
            return await self._reader.read(n)
        size = len(self._ready) if n < 0 else min(n, len(self._ready))
        data = bytes(self._ready[:size])
        del self._ready[:size]
        return data

    async def _next_frame(self) -> None:
        head = await self._reader.readexactly(7)
        if head.startswith(b"AMQP"):
            # The broker refused our protocol version: aiormq says so.
            self._ready += head
            return
        kind, channel, size = struct.unpack(">BHI", head)
        rest = await self._reader.readexactly(size + 1)
        if kind == _METHOD:
            rest = self._method(channel, rest)
        elif kind == _HEADER:
            rest = self._content_header(channel, rest)
        if len(rest) - 1 != size:
            head = struct.pack(">BHI", kind, channel, len(rest) - 1)
        self._ready += head
        self._ready += rest

    def _method(self, channel: int, rest: bytes) -> bytes:
        fields = _METHOD_FIELDS.get(struct.unpack_from(">HH", rest)) if len(rest) >= 5 else None
        if fields is None:
            return rest
        problems: list[str] = []
        try:
            payload = _strings(rest[4:-1], fields, problems)
        except (IndexError, struct.error):
            return rest  # malformed by the broker itself: aiormq will say so
        if not problems:
            return rest
        self._problems[channel] = problems
        return rest[:4] + payload + _FRAME_END

    def _content_header(self, channel: int, rest: bytes) -> bytes:
        problems = self._problems.pop(channel, [])
        payload = rest[:-1]
        try:
            repaired = _properties(payload, problems)
        except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the connection must live
            problems.append(f"properties cannot be decoded: {_error(exc)}")
            repaired = _rebuilt(payload[:12], {}, None, problems)
        if repaired is None:
            return rest
        try:
            pamqp.frame.unmarshal(struct.pack(">BHI", _HEADER, channel, len(repaired)) + repaired + _FRAME_END)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"properties cannot be decoded: {_error(exc)}")
            repaired = _rebuilt(payload[:12], {}, None, problems)
        return repaired + _FRAME_END


def _strings(payload: bytes, fields: tuple[tuple[str, str | int], ...], problems: list[str]) -> bytes:
    """`payload` (a method's fields) with each short string that is not UTF-8 escaped."""
    out, at = [], 0
    for name, kind in fields:
        if kind == "s":
            length = payload[at]
            raw = payload[at + 1:at + 1 + length]
            if len(raw) != length:
                raise IndexError(name)
            at += 1 + length
            out.append(_short(_utf8(name, raw, problems)))
        else:
            assert isinstance(kind, int)
            out.append(payload[at:at + kind])
            at += kind
    return b"".join(out) + payload[at:]


def _properties(payload: bytes, problems: list[str]) -> bytes | None:
    """None if pamqp decodes this content header's properties into what aio-pika can
    take, and nothing was wrong with its method (`problems` empty); else the header
    re-encoded with what could be decoded, and `UNDECODABLE` saying what could not."""
    prefix = payload[:12]  # class, weight, body size: the broker's own
    if len(prefix) != 12:
        raise ValueError("content header truncated")
    flags, at, word = 0, 12, 0
    while True:
        (partial,) = struct.unpack_from(">H", payload, at)
        at += 2
        flags |= partial << (16 * word)
        word += 1
        if not partial & 1:
            break
    kept: dict[int, bytes] = {}
    headers: bytes | None = None
    for name, flag, kind in _PROPERTY_FIELDS:
        if not flags & flag:
            continue
        if kind == "shortstr":
            length = payload[at]
            raw = payload[at + 1:at + 1 + length]
            if len(raw) != length:
                raise ValueError(f"{name} truncated")
            at += 1 + length
            value = _utf8(name, raw, problems)
            if name == "expiration" and not _is_number(value):
                problems.append(f"expiration is not a number: {value[:32]!r}")
                continue
            kept[flag] = _short(value)
        elif kind == "table":
            (length,) = struct.unpack_from(">I", payload, at)
            raw = payload[at:at + 4 + length]
            if len(raw) != 4 + length:
                raise ValueError("headers truncated")
            at += 4 + length
            try:
                pamqp.decode.field_table(raw)
                headers = raw
            except Exception as exc:  # noqa: BLE001 - ValueError, RecursionError...: not decodable
                problems.append(f"headers cannot be decoded: {_error(exc)}")
        elif kind == "octet":
            value = payload[at]
            at += 1
            if name == "delivery_mode" and value not in (1, 2):
                problems.append(f"delivery_mode is {value}, not 1 or 2")
                continue
            kept[flag] = bytes([value])
        else:  # timestamp
            raw = payload[at:at + 8]
            if len(raw) != 8:
                raise ValueError(f"{name} truncated")
            at += 8
            try:
                pamqp.decode.timestamp(raw)
            except Exception as exc:  # noqa: BLE001 - ValueError, OverflowError, OSError
                problems.append(f"timestamp cannot be decoded: {_error(exc)}")
                continue
            kept[flag] = raw
    if not problems:
        return None
    return _rebuilt(prefix, kept, headers, problems)


def _rebuilt(prefix: bytes, kept: dict[int, bytes], headers: bytes | None, problems: list[str]) -> bytes:
    """A content header of the properties `kept` (encoded, by flag), and the headers
    table (encoded, or None) with `UNDECODABLE` added."""
    reason = "; ".join(problems).encode()[:900]
    entry = _short(UNDECODABLE.encode()) + b"S" + struct.pack(">I", len(reason)) + reason
    table = (headers or b"\0\0\0\0")[4:] + entry
    fields = {**kept, _HEADERS_FLAG: struct.pack(">I", len(table)) + table}
    flags = 0
    for flag in fields:
        flags |= flag
    values = [fields[flag] for _, flag, _ in _PROPERTY_FIELDS if flag in fields]
    return prefix + struct.pack(">H", flags) + b"".join(values)


def _utf8(name: str, raw: bytes, problems: list[str]) -> bytes:
    """`raw` if it is UTF-8; else its bytes escaped (at most 255 bytes), noted in `problems`."""
    try:
        raw.decode()
        return raw
    except UnicodeDecodeError:
        problems.append(f"{name} is not UTF-8: {raw[:32]!r}")
        return raw.decode("utf-8", "backslashreplace").encode()[:255]


def _short(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def _is_number(raw: bytes) -> bool:
    try:
        float(raw)
        return True
    except ValueError:
        return False


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
