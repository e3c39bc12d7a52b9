"""What a soak watches besides CPU: each process's resident memory, open files and TCP
connections (from /proc), the outbox, inbox and idempotency tables' rows (asyncpg) and
the queues' ready messages (a passive declare: no management plugin needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import aio_pika
import asyncpg

from gozon.messages import ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE

_ESTABLISHED = "01"  # the st column of /proc/net/tcp


class Usage(NamedTuple):
    rss_kib: int
    fds: int
    tcp: int  # established TCP connections


def _tcp_states() -> dict[str, str]:
    """Socket inode → TCP state, for the whole network namespace (v4 and v6)."""
    states = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            states[fields[9]] = fields[3]
    return states


def usage(pids: dict[str, int]) -> dict[str, Usage | None]:
    """Each process's VmRSS, fd count and established TCP connections; None once gone."""
    states = _tcp_states()
    found: dict[str, Usage | None] = {}
    for name, pid in pids.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            links = []
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    links.append(os.readlink(fd.path))
                except OSError:  # closed meanwhile
                    pass
        except OSError:
            found[name] = None
            continue
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
        if rss is None:  # exited, not yet reaped
            found[name] = None
            continue
        inodes = [link[8:-1] for link in links if link.startswith("socket:[")]
        found[name] = Usage(rss, len(links), sum(states.get(inode) == _ESTABLISHED for inode in inodes))
    return found


class Tables(NamedTuple):
    pending: int  # outbox rows not yet sent
    sent: int  # outbox rows sent, kept until the retention actor purges them
    inbox: int
    idempotency_keys: int | None  # orders only


async def tables(con: asyncpg.Connection, idempotency: bool) -> Tables:
    outbox = await con.fetchrow("SELECT count(*) FILTER (WHERE sent_at IS NULL) AS pending,"
                                " count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent FROM outbox")
    inbox = await con.fetchval("SELECT count(*) FROM inbox")
    keys = await con.fetchval("SELECT count(*) FROM idempotency_keys") if idempotency else None
    return Tables(outbox["pending"], outbox["sent"], inbox, keys)


class Queues:
    """Ready messages in the service queues, by passive declare on a connection of its own;
    "—" while the broker cannot say (a shared broker may be restarted by another job)."""

    def __init__(self, url: str, gateway_queue: str) -> None:
        self.url = url
        self.names = {"orders_queue": ORDERS_QUEUE, "results": PAYMENTS_RESULTS_QUEUE, "gateway": gateway_queue}
        self.connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> Queues:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def depths(self) -> dict[str, int | None]:
        found: dict[str, int | None] = dict.fromkeys(self.names)
        try:
            if self.connection is None or self.connection.is_closed:
                self.connection = await aio_pika.connect(self.url, timeout=2)
            for label, name in self.names.items():
                # A channel each: a failed passive declare (no such queue) closes its channel.
                async with self.connection.channel() as channel:
                    found[label] = (await channel.declare_queue(name, passive=True)).declaration_result.message_count
        except (OSError, TimeoutError, RuntimeError, aio_pika.exceptions.AMQPError):
            pass  # the rest stay unknown
        return found
