"""One-for-one supervision: restarts with backoff, giving up past the restart intensity,
orderly shutdown on `stop`. Restart delays go through an injected `sleep` and `clock`."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from gozon.runtime import Backoff, Child, RestartPolicy, SupervisorGaveUp, supervise

pytestmark = pytest.mark.anyio

TINY = Backoff(initial=0.001, cap=0.001)


def policy(**changes: object) -> RestartPolicy:
    settings: dict[str, object] = {"max_restarts": 10, "window": 60.0, "backoff": TINY, "healthy_after": 60.0}
    return RestartPolicy(**(settings | changes))


class Recorder:
    """An injected `sleep` that records the delays it is asked for and waits no time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.lowlevel.checkpoint()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_crashed_child_is_restarted_until_stop_is_set() -> None:
    stop = anyio.Event()
    running = anyio.Event()
    runs = 0
    restarted: list[str] = []

    async def flaky(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        await anyio.lowlevel.checkpoint()
        if runs <= 2:
            raise RuntimeError(f"crash {runs}")
        running.set()
        await stop.wait()

    async def stop_once_running() -> None:
        await running.wait()
        stop.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_running)
            await supervise([Child("flaky", flaky)], stop=stop, policy=policy(), on_restart=restarted.append)
    assert runs == 3
    assert restarted == ["flaky", "flaky"]


async def test_restart_delays_grow_as_the_backoff_says() -> None:
    stop = anyio.Event()
    recorder = Recorder()
    runs = 0

    async def crashes_five_times(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        await anyio.lowlevel.checkpoint()
        if runs <= 5:
            raise RuntimeError("crash")
        stop.set()

    backoff = Backoff(initial=0.1, factor=2.0, cap=0.5, jitter=0.0)
    with anyio.fail_after(5):
        await supervise([Child("c", crashes_five_times)], stop=stop, policy=policy(backoff=backoff),
                        sleep=recorder.sleep)
    assert recorder.delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert runs == 6


async def test_a_child_that_ran_healthy_before_crashing_starts_its_backoff_afresh() -> None:
    stop = anyio.Event()
    recorder = Recorder()
    clock = FakeClock()
    # How long each run lasts (on the fake clock) before it crashes.
    run_times = [0.0, 0.0, 20.0, 0.0, 9.9]
    runs = 0

    async def child(stop: anyio.Event) -> None:
        nonlocal runs
        await anyio.lowlevel.checkpoint()
        if runs == len(run_times):
            stop.set()
            return
        clock.now += run_times[runs]
        runs += 1
        raise RuntimeError("crash")

    backoff = Backoff(initial=0.1, factor=2.0, cap=30.0, jitter=0.0)
    with anyio.fail_after(5):
        await supervise([Child("c", child)], stop=stop, policy=policy(backoff=backoff, healthy_after=10.0),
                        clock=clock, sleep=recorder.sleep)
    # The third run lasted 20 s >= healthy_after: back to the initial delay. 9.9 s is not enough.
    assert recorder.delays == pytest.approx([0.1, 0.2, 0.1, 0.2, 0.4])


async def test_a_child_crashing_forever_makes_the_supervisor_give_up_and_cancel_the_others() -> None:
    stop = anyio.Event()
    bystander_started = anyio.Event()
    crashes = 0
    bystander: list[str] = []

    async def crasher(stop: anyio.Event) -> None:
        nonlocal crashes
        await bystander_started.wait()
        crashes += 1
        raise RuntimeError(f"crash {crashes}")

    async def innocent(stop: anyio.Event) -> None:
        bystander_started.set()
        try:
            await stop.wait()
            bystander.append("returned")
        except anyio.get_cancelled_exc_class():
            bystander.append("cancelled")
            raise
        finally:
            bystander.append("finally")

    gave_up = pytest.RaisesExc(
        SupervisorGaveUp, match="crasher", check=lambda exc: isinstance(exc.__cause__, RuntimeError)
    )
    with anyio.fail_after(5), pytest.RaisesGroup(gave_up, allow_unwrapped=True, flatten_subgroups=True):
        await supervise([Child("innocent", innocent), Child("crasher", crasher)], stop=stop,
                        policy=policy(max_restarts=3), sleep=Recorder().sleep)
    assert crashes == 4  # max_restarts + 1
    assert bystander == ["cancelled", "finally"]
    assert not stop.is_set()


@pytest.mark.parametrize(("spacing", "gives_up"), [(11.0, False), (5.0, True)])
async def test_only_crashes_within_the_window_count(spacing: float, gives_up: bool) -> None:
    stop = anyio.Event()
    clock = FakeClock()
    runs = 0

    async def child(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        await anyio.lowlevel.checkpoint()
        if runs > 5:
            stop.set()
            return
        clock.now += spacing
        raise RuntimeError("crash")

    run = supervise([Child("c", child)], stop=stop, policy=policy(max_restarts=1, window=10.0),
                    clock=clock, sleep=Recorder().sleep)
    with anyio.fail_after(5):
        if gives_up:
            with pytest.RaisesGroup(SupervisorGaveUp, allow_unwrapped=True, flatten_subgroups=True):
                await run
        else:
            await run
    assert runs == (2 if gives_up else 6)


async def test_stop_makes_children_return_and_the_supervisor_return() -> None:
    stop = anyio.Event()
    started = {"a": anyio.Event(), "b": anyio.Event()}
    runs = {"a": 0, "b": 0}
    returned: list[str] = []

    def actor(name: str) -> Callable[[anyio.Event], object]:
        async def run(stop: anyio.Event) -> None:
            runs[name] += 1
            started[name].set()
            await stop.wait()
            returned.append(name)

        return run

    async def stop_once_started() -> None:
        for event in started.values():
            await event.wait()
        stop.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_started)
            await supervise([Child("a", actor("a")), Child("b", actor("b"))], stop=stop, policy=policy())
    assert sorted(returned) == ["a", "b"]
    assert runs == {"a": 1, "b": 1}


async def test_a_child_that_returns_is_not_restarted() -> None:
    stop = anyio.Event()
    runs = 0

    async def one_shot(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        await supervise([Child("one_shot", one_shot)], stop=stop, policy=policy())
    assert runs == 1
    assert not stop.is_set()


async def test_a_returned_child_stays_down_while_its_siblings_run() -> None:
    stop = anyio.Event()
    runs = 0
    returned = anyio.Event()

    async def one_shot(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        await anyio.lowlevel.checkpoint()
        returned.set()

    async def sibling(stop: anyio.Event) -> None:
        await stop.wait()

    async def stop_when_quiet() -> None:
        await returned.wait()
        await anyio.wait_all_tasks_blocked()  # a restart, if any, would have run by now
        stop.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_when_quiet)
            await supervise([Child("one_shot", one_shot), Child("sibling", sibling)], stop=stop, policy=policy())
    assert runs == 1


async def test_children_do_not_start_when_stop_is_already_set() -> None:
    stop = anyio.Event()
    stop.set()
    runs = 0

    async def child(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1

    with anyio.fail_after(5):
        await supervise([Child("c", child)], stop=stop, policy=policy())
    assert runs == 0


async def test_stop_during_the_backoff_wait_returns_at_once() -> None:
    stop = anyio.Event()
    backing_off = anyio.Event()
    runs = 0

    async def crash_once(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("crash")

    async def real_sleep(delay: float) -> None:
        backing_off.set()
        await anyio.sleep(delay)

    async def stop_while_backing_off() -> None:
        await backing_off.wait()
        stop.set()

    hour = Backoff(initial=3600.0, cap=3600.0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_while_backing_off)
            await supervise([Child("c", crash_once)], stop=stop, policy=policy(backoff=hour), sleep=real_sleep)
    assert runs == 1


async def test_a_crash_while_draining_is_not_restarted() -> None:
    stop = anyio.Event()
    running = anyio.Event()
    runs = 0

    async def fails_on_the_way_out(stop: anyio.Event) -> None:
        nonlocal runs
        runs += 1
        running.set()
        await stop.wait()
        raise RuntimeError("could not flush")

    async def stop_once_running() -> None:
        await running.wait()
        stop.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_running)
            await supervise([Child("c", fails_on_the_way_out)], stop=stop, policy=policy())
    assert runs == 1
