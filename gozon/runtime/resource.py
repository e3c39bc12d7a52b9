"""Shared resources that connect in the background (a database pool, a broker
connection): the process starts at once, and what needs the resource waits for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio

from gozon.runtime.tasks import task_group


class Resource:
    """`connect_forever()` keeps the resource up, calling `_up()` / `_down()` as it
    comes and goes; `ready` says whether it is up now, `wait_ready()` waits until it is."""

    def __init__(self) -> None:
        self._ready = anyio.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def _up(self) -> None:
        self._ready.set()

    def _down(self) -> None:
        if self._ready.is_set():
            self._ready = anyio.Event()

    async def connect_forever(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


R = TypeVar("R", bound=Resource)


@asynccontextmanager
async def in_background(resource: R) -> AsyncIterator[R]:
    """`resource`, connecting in the background while the body runs, closed on exit."""
    try:
        async with task_group() as tg:
            tg.start_soon(resource.connect_forever, name=f"{type(resource).__name__}.connect")
            yield resource
            tg.cancel_scope.cancel()
    finally:
        await resource.close()
