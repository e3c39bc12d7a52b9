"""`./deploy/run.sh` as a shell runs a foreground job: in a process group of its own,
its output on a terminal (a pseudo-terminal here) or piped into `tee`; stopped as
Ctrl-C stops it, by SIGINT to that group; and every process it started, watched."""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.support import ROOT, wait_until

RUN_SH = str(ROOT / "deploy" / "run.sh")


def _children() -> dict[int, list[int]]:
    """Every live process's children, from /proc (zombies are gone for our purpose)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    return children


def _stat(pid: int) -> list[str] | None:
    """State, parent, ... of `pid` (/proc/PID/stat after the command's name), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(*roots: int) -> set[int]:
    children, found, todo = _children(), set(), list(roots)
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` now, as the next run would."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


class ForegroundJob:
    """run.sh started in a new process group, with stdout on a pseudo-terminal
    (`tee_to` None) or piped into `tee tee_to` in the same group, as a shell would."""

    def __init__(self, env: dict[str, str], tee_to: Path | None = None) -> None:
        self.output = bytearray()  # what the terminal shows (run.sh's, or tee's)
        self.processes: set[int] = set()
        terminal, screen = pty.openpty()
        try:
            if tee_to is None:
                self.run_sh = subprocess.Popen([RUN_SH], env=env, stdin=subprocess.DEVNULL, stdout=screen,
                                               stderr=screen, process_group=0)
                self.tee = None
            else:
                self.run_sh = subprocess.Popen([RUN_SH], env=env, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.PIPE, stderr=screen, process_group=0)
                self.tee = subprocess.Popen(["tee", str(tee_to)], stdin=self.run_sh.stdout, stdout=screen,
                                            stderr=screen, process_group=self.run_sh.pid)
                self.run_sh.stdout.close()  # tee alone reads the pipe, as in a shell
        finally:
            os.close(screen)
        self._reader = threading.Thread(target=self._read, args=(terminal,), daemon=True)
        self._reader.start()

    def _read(self, terminal: int) -> None:
        try:
            while chunk := os.read(terminal, 65536):
                self.output += chunk
        except OSError:  # EIO: every writer of the terminal is gone
            pass
        finally:
            os.close(terminal)

    @property
    def started(self) -> list[subprocess.Popen]:
        return [p for p in (self.run_sh, self.tee) if p is not None]

    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def note_processes(self) -> set[int]:
        """The job's processes and all they started (honcho's, the services)."""
        self.processes |= descendants(*(p.pid for p in self.started))
        return self.processes

    def ctrl_c(self) -> None:
        os.killpg(self.run_sh.pid, signal.SIGINT)

    def hang_up(self) -> None:
        """What a terminal closing sends its foreground job."""
        os.killpg(self.run_sh.pid, signal.SIGHUP)

    def wait_gone(self, timeout: float) -> None:
        """Until every noted process has ended; fails naming those left."""
        self.note_processes()
        try:
            wait_until(lambda: not any(alive(pid) for pid in self.processes),
                       timeout=timeout, interval=0.1, what="every process of the job to end")
        except AssertionError:
            left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    for pid in self.processes if alive(pid)}
            raise AssertionError(f"still running {timeout}s after the stop: {left}") from None

    def close(self) -> None:
        """Kill whatever is left (a failed test's job), and reap what we started."""
        for pid in self.note_processes():
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(pid, signal.SIGKILL)
        for process in self.started:
            process.wait(10)
        self._reader.join(10)
