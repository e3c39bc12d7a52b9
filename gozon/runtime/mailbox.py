"""Bounded mailboxes between actors: a sender waits when the box is full (back-pressure)
or, with `offer`, learns at once that it is full and decides what to drop.

Its owner closes a mailbox when done with it — `with Mailbox(n) as box:`, or
`discard()` — so that nothing is left to the garbage collector."""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

T = TypeVar("T")


class Mailbox(Generic[T]):
    """A bounded queue of messages for one actor: `close()` once no more come (readers
    drain what is left), `discard()` when its owner is done with it."""

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

    def waiting(self, limit: int) -> list[T]:
        """Up to `limit` messages that are there now, without waiting for more."""
        taken: list[T] = []
        while len(taken) < limit:
            try:
                taken.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        return taken

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

    def discard(self) -> None:
        """Close both ends: whatever is still queued is dropped."""
        self._send.close()
        self._receive.close()

    def __enter__(self) -> Mailbox[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.discard()

    def __len__(self) -> int:
        return self._receive.statistics().current_buffer_used
