"""`unless_stopped`: await something unless the process is stopping."""

from __future__ import annotations

import gc
import inspect
import warnings

import anyio
import pytest

from gozon.runtime.stop import unless_stopped

pytestmark = pytest.mark.anyio


async def test_true_when_the_awaitable_completes() -> None:
    stop = anyio.Event()
    done = []

    async def work() -> None:
        await anyio.lowlevel.checkpoint()
        done.append("work")

    with anyio.fail_after(5):
        assert await unless_stopped(stop, work()) is True
    assert done == ["work"]
    assert not stop.is_set()


async def test_false_and_the_awaitable_cancelled_once_stop_is_set() -> None:
    stop = anyio.Event()
    started = anyio.Event()
    finished = []

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("cancelled")

    async def stop_once_started() -> None:
        await started.wait()
        stop.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_started)
            assert await unless_stopped(stop, forever()) is False
    assert finished == ["cancelled"]


async def test_false_without_starting_the_awaitable_when_already_stopped() -> None:
    stop = anyio.Event()
    stop.set()
    started = []

    async def work() -> None:
        started.append("work")

    coro = work()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with anyio.fail_after(5):
            assert await unless_stopped(stop, coro) is False
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        del coro
        gc.collect()
    assert started == []
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


async def test_an_error_in_the_awaitable_propagates() -> None:
    stop = anyio.Event()

    async def broken() -> None:
        await anyio.lowlevel.checkpoint()
        raise OSError("connection refused")

    # Raised inside a task group, so it may come wrapped in an exception group.
    with anyio.fail_after(5), pytest.RaisesGroup(
        pytest.RaisesExc(OSError, match="connection refused"), allow_unwrapped=True
    ):
        await unless_stopped(stop, broken())
