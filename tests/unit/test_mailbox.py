"""Bounded mailboxes: back-pressure on `put`, `offer` that never waits, drain after `close`."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterator

import anyio
import pytest

from gozon.runtime.mailbox import Mailbox


@pytest.fixture
def mailbox() -> Iterator[Callable[[int], Mailbox]]:
    """Make mailboxes, discarded after the test as their owner must: anyio warns
    (ResourceWarning, an error here) about an unclosed memory stream when collected."""
    made: list[Mailbox] = []

    def make(size: int) -> Mailbox:
        made.append(Mailbox(size))
        return made[-1]

    yield make
    for box in made:
        box.discard()


@pytest.mark.parametrize("size", [0, -1])
def test_a_mailbox_holds_at_least_one_message(size: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        Mailbox(size)


@pytest.mark.anyio
async def test_put_waits_while_full_until_a_get_makes_room(mailbox) -> None:
    box: Mailbox[str] = mailbox(1)
    delivered = anyio.Event()

    async def second_put() -> None:
        await box.put("second")
        delivered.set()

    with anyio.fail_after(5):
        await box.put("first")
        async with anyio.create_task_group() as tg:
            tg.start_soon(second_put)
            await anyio.wait_all_tasks_blocked()
            assert not delivered.is_set()  # held back: the box is full
            assert len(box) == 1

            assert await box.get() == "first"
            await delivered.wait()
        assert len(box) == 1
        assert await box.get() == "second"
    assert len(box) == 0


@pytest.mark.anyio
async def test_offer_delivers_while_there_is_room_and_refuses_when_full(mailbox) -> None:
    box: Mailbox[int] = mailbox(2)

    assert box.offer(1) is True
    assert box.offer(2) is True
    assert box.offer(3) is False
    assert len(box) == 2
    with anyio.fail_after(5):
        assert [await box.get(), await box.get()] == [1, 2]
    assert box.offer(4) is True


@pytest.mark.anyio
async def test_offer_refuses_and_put_raises_once_closed(mailbox) -> None:
    box: Mailbox[int] = mailbox(2)
    box.close()

    assert box.offer(1) is False
    with anyio.fail_after(5), pytest.raises(anyio.ClosedResourceError):
        await box.put(1)
    assert len(box) == 0


@pytest.mark.anyio
async def test_close_lets_readers_drain_what_is_left_then_iteration_ends(mailbox) -> None:
    box: Mailbox[int] = mailbox(3)
    for n in (1, 2, 3):
        await box.put(n)
    box.close()
    assert len(box) == 3

    with anyio.fail_after(5):
        assert [n async for n in box] == [1, 2, 3]
        with pytest.raises(anyio.EndOfStream):
            await box.get()


@pytest.mark.anyio
async def test_close_wakes_a_reader_waiting_on_an_empty_box(mailbox) -> None:
    box: Mailbox[int] = mailbox(1)
    received: list[int] = []
    ended = anyio.Event()

    async def reader() -> None:
        async for n in box:
            received.append(n)
        ended.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await box.put(7)
            await anyio.wait_all_tasks_blocked()
            assert received == [7]
            assert not ended.is_set()  # the reader waits for more
            box.close()
            await ended.wait()
    assert received == [7]


@pytest.mark.anyio
async def test_len_counts_the_waiting_messages(mailbox) -> None:
    box: Mailbox[str] = mailbox(3)
    assert len(box) == 0
    assert box.offer("a")
    with anyio.fail_after(5):
        await box.put("b")
        assert len(box) == 2
        assert await box.get() == "a"
    assert len(box) == 1


def unclosed_streams(action: Callable[[], object]) -> list[str]:
    """The ResourceWarnings of streams left unclosed by `action` (collected at once)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def forget_a_mailbox() -> None:
    Mailbox[int](1)


def discard_a_mailbox() -> None:
    with Mailbox[int](1) as box:
        box.offer(1)


@pytest.mark.anyio
async def test_a_closed_and_drained_mailbox_is_empty_and_discarding_it_leaves_nothing_open() -> None:
    def drained() -> None:
        with Mailbox[int](1) as box:
            box.offer(1)
            box.close()
            assert box.offer(2) is False

    assert unclosed_streams(drained) == []


def test_a_forgotten_mailbox_is_reported_and_a_discarded_one_is_not() -> None:
    # The check the resource tests rely on: it sees a leak, and only a leak.
    leaks = unclosed_streams(forget_a_mailbox)
    assert len(leaks) == 2 and all("Unclosed <MemoryObject" in leak for leak in leaks), leaks
    assert unclosed_streams(discard_a_mailbox) == []


def test_discard_drops_what_is_queued_and_refuses_more() -> None:
    box: Mailbox[int] = Mailbox(2)
    assert box.offer(1)
    box.discard()
    assert not box.offer(2)
