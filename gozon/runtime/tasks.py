"""Task groups whose lone error comes out as itself.

anyio (like trio) wraps every error that leaves a task group in an ExceptionGroup, even
a single one raised by the body. Code around a group usually wants `except OSError:` to
work, so `task_group()` unwraps a group of one; several errors stay grouped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup


@asynccontextmanager
async def task_group() -> AsyncIterator[TaskGroup]:
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            error = group.exceptions[0]
            raise error from error.__cause__
        raise
