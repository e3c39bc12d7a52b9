"""Bounded mailboxes between actors: a sender waits when the box is full (back-pressure)
or, with `offer`, learns at once that it is full and decides what to drop."""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

T = TypeVar("T")


class Mailbox(Generic[T]):
    """A bounded queue of messages for one actor, closed by `close()` once no more come."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a mailbox holds at least one message")
        self._send: MemoryObjectSendStream[T]
        self._receive: MemoryObjectReceiveStream[T]
        self._send, self._receive = anyio.create_memory_object_stream[T](size)

    async def put(self, message: T) -> None:
        """Wait for room, then deliver. Raises `anyio.ClosedResourceError` once closed."""
        await self._send.send(message)

    def offer(self, message: T) -> bool:
        """Deliver at once if there is room; False when full or closed."""
        try:
            self._send.send_nowait(message)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    async def get(self) -> T:
        """The next message; raises `anyio.EndOfStream` once closed and empty."""
        return await self._receive.receive()

    def close(self) -> None:
        """No more messages: readers drain what is left, then see the end."""
        self._send.close()

    def __aiter__(self) -> Mailbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def __del__(self) -> None:
        # Release both ends when the mailbox goes (anyio warns about unclosed streams);
        # the guard covers an __init__ that raised before they existed.
        for stream in (getattr(self, "_send", None), getattr(self, "_receive", None)):
            if stream is not None:
                stream.close()

    def __len__(self) -> int:
        return self._receive.statistics().current_buffer_used
