"""What a failure means, in one tree. `Database` and `Broker` raise only these for the
failures of PostgreSQL and RabbitMQ, and actors catch only these:

    GozonError
    ├── Transient               a dependency is down or refused us: wait and retry
    │   ├── DatabaseUnavailable     PostgreSQL unreachable, restarting, out of slots, a connection
    │   │                           lost mid-use; a deadlock or serialization failure (retry it)
    │   └── BrokerUnavailable       RabbitMQ unreachable, connection or channel lost
    └── Poison                  this message can never be handled: dead-letter it

Anything else is a bug: it crashes the actor, and the supervisor decides (restart with
backoff, or give up and exit non-zero) — but for a consumer's handler, where a bug
that one message triggers is tried a few times, then that message is dead-lettered
with the error as its reason (spec §4: no single message can stop a process).
"""

from __future__ import annotations


class GozonError(Exception):
    """The root of every failure Gozon itself classifies."""


class Transient(GozonError):
    """A dependency is down or refused us; the same work may succeed later."""


class DatabaseUnavailable(Transient):
    """PostgreSQL cannot serve us now."""


class BrokerUnavailable(Transient):
    """RabbitMQ cannot serve us now."""


class Poison(GozonError):
    """A message that no retry can make valid."""
