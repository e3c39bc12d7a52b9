"""Waiting for something unless the process is stopping."""

from __future__ import annotations

from collections.abc import Coroutine

import anyio

from gozon.runtime.tasks import task_group


async def unless_stopped(stop: anyio.Event, awaitable: Coroutine[object, object, object]) -> bool:
    """Await `awaitable`, abandoning it once `stop` is set; True if it completed.
    Once `stop` is set this returns False at once, without starting `awaitable`."""
    if stop.is_set():
        awaitable.close()
        return False
    done = False
    async with task_group() as tg:

        async def stopped() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(stopped)
        await awaitable
        done = True
        tg.cancel_scope.cancel()
    return done
