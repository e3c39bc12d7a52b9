"""A RabbitMQ cluster of three nodes on this machine, for the tests that kill one: each
node a `rabbitmq-server` of its own (name, ports, data folder, empty plugin list),
sharing an Erlang cookie, joined with `rabbitmqctl join_cluster`. The machine's own
node (5672, 25672) is untouched; ports and names depend on GOZON_TEST_SLOT, so runs
in other slots can have clusters of their own."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.settings import SLOT
from tests.support import wait_until

# The real scripts: Debian's /usr/sbin wrappers re-run them as the rabbitmq user,
# who could not read our temporary folders.
LIB = Path("/usr/lib/rabbitmq/bin")


def _tool(name: str) -> str | None:
    return str(LIB / name) if (LIB / name).is_file() else shutil.which(name)


SERVER, CTL = _tool("rabbitmq-server"), _tool("rabbitmqctl")
AVAILABLE = SERVER is not None and CTL is not None

# Starting a node on a busy 2-core machine takes seconds; a command on a live one, less.
BOOT = 90.0
COMMAND = 60.0


class Node:
    def __init__(self, n: int, home: Path) -> None:
        self.name = f"gozon{SLOT}-n{n}@localhost"
        self.amqp_port = 26000 + 10 * SLOT + n
        self.dist_port = 26100 + 10 * SLOT + n
        self.dir = home / f"n{n}"
        self.proc: subprocess.Popen | None = None

    def url(self, vhost: str = "") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{vhost}"

    def log_tail(self, lines: int = 20) -> str:
        logs = [self.dir / "server.log", *sorted((self.dir / "log").glob("*.log"))]
        return "\n".join(line for path in logs if path.exists()
                         for line in path.read_text(errors="replace").splitlines()[-lines:])

    def pid(self) -> int | None:
        """The Erlang VM's OS pid (the server script is its parent)."""
        try:
            return int((self.dir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None


class Cluster:
    """Three nodes under `home` (a fresh folder, removed by nobody but the caller)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.nodes = [Node(n, home) for n in (1, 2, 3)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        # The cookie file in a HOME of our own; CLI tools in a port range of their own.
        self.env |= {"HOME": str(home), "RABBITMQ_CTL_DIST_PORT_MIN": str(36200 + 20 * SLOT),
                     "RABBITMQ_CTL_DIST_PORT_MAX": str(36219 + 20 * SLOT)}
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(f"GOZONTESTCLUSTER{SLOT}")
        cookie.chmod(0o400)

    def ctl(self, node: Node, *args: str, timeout: float = COMMAND) -> str:
        done = subprocess.run([CTL, "-n", node.name, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def _start(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        (node.dir / "enabled_plugins").write_text("[].\n")  # no management/prometheus ports
        # Our own config file: the machine's /etc/rabbitmq/rabbitmq.conf names port 5672.
        (node.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{node.amqp_port}\n")
        env = self.env | {
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.dir / "log"),
            "RABBITMQ_PID_FILE": str(node.dir / "pid"),
            # One scheduler: the machine is small and shared.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1",
        }
        with (node.dir / "server.log").open("ab") as log:
            node.proc = subprocess.Popen([SERVER], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=node.dir, start_new_session=True)

    def _await_boot(self, node: Node) -> None:
        # await_startup fails at once while the node has not even registered with epmd.
        deadline = time.monotonic() + BOOT
        while True:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"{node.name} exited {node.proc.returncode}:\n{node.log_tail()}")
            try:
                self.ctl(node, "await_startup", "--timeout", "20", timeout=40)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} did not boot within {BOOT}s:\n{node.log_tail()}") from None
                time.sleep(0.5)

    def start(self) -> None:
        """Start the three nodes, then join the second and third to the first."""
        for node in self.nodes:
            self._start(node)
        for node in self.nodes:
            self._await_boot(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app", timeout=BOOT)
        wait_until(lambda: self.running_nodes(first) == {n.name for n in self.nodes}, timeout=COMMAND,
                   interval=0.5, what="the three nodes running as one cluster")

    def running_nodes(self, node: Node) -> set[str]:
        out = self.ctl(node, "eval", "rabbit_nodes:all_running().")
        return {name.strip(" '[]\n") for name in out.split(",") if name.strip(" '[]\n")}

    def add_vhost(self, vhost: str) -> None:
        first = self.nodes[0]
        self.ctl(first, "add_vhost", vhost)
        self.ctl(first, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def urls(self, vhost: str) -> str:
        """GOZON_AMQP_URL for the three nodes, the first node first."""
        return ",".join(node.url(vhost) for node in self.nodes)

    def connections(self, via: Node) -> dict[str, str]:
        """connection name → the node it is on, for every client connection to the cluster."""
        listed = self.ctl(via, "list_connections", "pid", "client_properties", "--quiet", "--no-table-headers")
        found = {}
        for line in listed.splitlines():
            pid, _, properties = line.partition("\t")
            name = re.search(r'\{"connection_name","([^"]*)"\}', properties)
            if name:
                # A pid names its node: <gozon5-n1@localhost.1234.5.6>.
                found[name.group(1)] = pid.strip("<>").split(".")[0]
        return found

    def queues(self, via: Node, vhost: str) -> dict[str, dict]:
        """name → {type, leader, members} of every queue of `vhost`."""
        listed = json.loads(self.ctl(via, "list_queues", "-p", vhost, "name", "type", "leader", "members",
                                     "--formatter", "json", "--quiet"))
        return {q["name"]: q for q in listed}

    def node(self, name: str) -> Node:
        [node] = [n for n in self.nodes if n.name == name]
        return node

    def kill(self, node: Node) -> None:
        """kill -9 the node's Erlang VM: no goodbye to its peers or its clients."""
        pid = node.pid()
        assert pid is not None, f"{node.name} wrote no pid file"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: node.proc is None or node.proc.poll() is not None or not _alive(pid), timeout=30,
                   what=f"{node.name} to die")

    def stop(self) -> None:
        """Stop every node still running (whatever state the test left it in)."""
        for node in self.nodes:
            if node.proc is None:
                continue
            pid = node.pid()
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)  # the data folder is thrown away: no need to be nice
            try:
                os.killpg(node.proc.pid, signal.SIGKILL)  # the script and whatever it started
            except ProcessLookupError:
                pass
            node.proc.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for node in self.nodes if (pid := node.pid())) and time.monotonic() < deadline:
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its parent) counts as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
