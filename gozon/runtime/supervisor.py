"""One-for-one supervision: each child actor runs until the process is told to stop;
a crashed child is restarted after an exponential backoff, and when children crash
more than `max_restarts` times within `window` seconds the supervisor gives up, so
that the process exits non-zero and its own supervisor (honcho, docker) takes over.

An actor is `async def run(stop: anyio.Event) -> None`: it watches `stop`, finishes
what it holds in flight, and returns. Only exceptions count as crashes; a dependency
that is down is the actor's own business (it waits and retries, see `Backoff`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import anyio
import msgspec
import structlog

from gozon.runtime.backoff import Backoff
from gozon.runtime.stop import unless_stopped
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.runtime")

Actor = Callable[[anyio.Event], Awaitable[None]]


class Child(msgspec.Struct, frozen=True):
    name: str
    run: Actor


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_restarts: int = 5
    window: float = 30.0
    backoff: Backoff = Backoff(initial=0.1, factor=2.0, cap=30.0, jitter=0.1)
    # A child that ran this long before crashing starts its backoff afresh.
    healthy_after: float = 10.0


DEFAULT_POLICY = RestartPolicy()


class SupervisorGaveUp(Exception):
    """Children crashed more often than the restart policy allows."""


async def supervise(
    children: Sequence[Child],
    *,
    stop: anyio.Event,
    policy: RestartPolicy = DEFAULT_POLICY,
    clock: Callable[[], float] = anyio.current_time,
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    on_restart: Callable[[str], None] | None = None,
) -> None:
    """Run every child until each has returned after `stop` was set.

    Args:
        on_restart: told the child's name each time a crashed child is restarted.

    Raises:
        SupervisorGaveUp: restart intensity exceeded; the other children are cancelled.
    """
    crashes: deque[float] = deque()

    async def keep_running(child: Child) -> None:
        attempt = 0
        while not stop.is_set():
            started = clock()
            log.info("actor started", actor=child.name)
            try:
                await child.run(stop)
            except Exception as exc:
                now = clock()
                if now - started >= policy.healthy_after:
                    attempt = 0
                crashes.append(now)
                while crashes and now - crashes[0] > policy.window:
                    crashes.popleft()
                if len(crashes) > policy.max_restarts:
                    log.error("actor crashed too often, giving up", actor=child.name,
                              crashes=len(crashes), window=policy.window, exc_info=exc)
                    raise SupervisorGaveUp(
                        f"{len(crashes)} crashes within {policy.window}s, the last in {child.name}"
                    ) from exc
                delay = policy.backoff.delay(attempt)
                attempt += 1
                log.error("actor crashed", actor=child.name, restart_in=round(delay, 3), exc_info=exc)
                await unless_stopped(stop, sleep(delay))
                if not stop.is_set():
                    log.info("actor restarting", actor=child.name, attempt=attempt)
                    if on_restart is not None:
                        on_restart(child.name)
            else:
                log.info("actor stopped", actor=child.name)
                return

    async with task_group() as tg:
        for child in children:
            tg.start_soon(keep_running, child, name=child.name)

