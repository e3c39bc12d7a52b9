"""CPU time by process, read from /proc: the three services, PostgreSQL's processes,
RabbitMQ's beam.smp and the load generator itself, and the whole machine beside them."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

PROCESSES = ("gateway", "orders", "payments", "postgres", "rabbitmq", "load generator")
MS_PER_TICK = 1000 / os.sysconf("SC_CLK_TCK")
# A backend's title names its client after the user and database: "… postgres mydb 127.0.0.1(5432) idle".
_CLIENT = re.compile(r"^(\[local\]|.+\(\d+\))$")


class _Stat(NamedTuple):
    comm: str
    ppid: int
    own: int  # utime + stime, in clock ticks
    children: int  # cutime + cstime: children that exited and were reaped


def _stat(pid: int | str) -> _Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # exited meanwhile
        return None
    head, _, tail = text.rpartition(")")  # the comm may itself hold spaces and parentheses
    fields = tail.split()  # from field 3 (state) on: ppid is field 4, utime..cstime 14..17
    return _Stat(head.partition("(")[2], int(fields[1]), int(fields[11]) + int(fields[12]),
                 int(fields[13]) + int(fields[14]))


def _other_backend(pid: int, databases: set[str]) -> bool:
    """A backend serving another database than the benchmark's (another client of the shared server)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return False
    client = next((i for i, word in enumerate(title) if _CLIENT.match(word)), None)
    return client is not None and client >= 2 and title[client - 1] not in databases


def _machine_busy_ticks() -> int:
    # "cpu user nice system idle iowait irq softirq steal …": all before steal (time the host
    # gave to other guests) but idle and iowait is work done here.
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return sum(fields) - fields[3] - fields[4]


class Sample(NamedTuple):
    at: float  # time.perf_counter()
    ticks: dict[str, int]  # cumulative, by name in PROCESSES, and "machine"
    other_backends: dict[int, int]  # pid → ticks of the live backends of other databases


class CpuMeter:
    """Samples of cumulative CPU time by process; `used` turns two into what a phase cost."""

    def __init__(self, pids: dict[str, int], databases: Iterable[str]) -> None:
        self.pids = pids
        self.databases = set(databases)

    def sample(self) -> Sample:
        ticks = dict.fromkeys(PROCESSES, 0)
        for name, pid in self.pids.items():
            stat = _stat(pid)
            ticks[name] = stat.own + stat.children if stat else 0
        stats = {int(e.name): s for e in os.scandir("/proc") if e.name.isdigit() and (s := _stat(e.name))}
        postgres = {pid: s for pid, s in stats.items() if s.comm == "postgres"}
        other_backends = {}
        for pid, s in postgres.items():
            ticks["postgres"] += s.own
            if s.ppid not in postgres:
                # The postmaster: its children's ticks hold the backends that exited since it started.
                ticks["postgres"] += s.children
            elif _other_backend(pid, self.databases):
                other_backends[pid] = s.own
        ticks["rabbitmq"] = sum(s.own + s.children for s in stats.values() if s.comm == "beam.smp")
        ticks["machine"] = _machine_busy_ticks()
        return Sample(time.perf_counter(), ticks, other_backends)


def used(before: Sample, after: Sample) -> dict[str, float]:
    """CPU ms between two samples by name; "postgres, other databases": the part of postgres
    spent by other clients' backends alive at the second sample; "wall": the ms between."""
    ms = {name: (after.ticks[name] - before.ticks[name]) * MS_PER_TICK for name in after.ticks}
    other = sum(t - before.other_backends.get(pid, 0) for pid, t in after.other_backends.items())
    ms["postgres, other databases"] = other * MS_PER_TICK
    ms["wall"] = (after.at - before.at) * 1000
    return ms
