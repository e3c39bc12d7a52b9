"""Exponential backoff: the delay schedule for restarts and reconnects."""

from __future__ import annotations

import random

import msgspec


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """`initial` doubling (times `factor`) up to `cap`; `jitter` spreads each delay by
    up to that fraction downwards so replicas restarting together do not stampede."""

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.0

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0 for the first retry)."""
        try:
            base = min(self.cap, self.initial * self.factor**attempt)
        except OverflowError:
            base = self.cap
        return base * (1.0 - self.jitter * random.random())


# For dependencies that are down (PostgreSQL, RabbitMQ): retry soon, never wait long.
RECONNECT = Backoff(initial=0.1, cap=3.0, jitter=0.2)
