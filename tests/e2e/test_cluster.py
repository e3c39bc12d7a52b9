"""RabbitMQ as a cluster, the way production runs it (spec §4): the three processes get
GOZON_AMQP_URL listing three nodes of a real cluster started on this machine, and the
node they are connected to — which leads the quorum queues — is killed with `kill -9` in
the middle of a burst. The queues, replicated on the three nodes, live on; every process
moves to a live node by itself; every order ends terminal, money is conserved, a
finished order has one debit, and every open WebSocket gets every result of its user.

The processes run on ports and databases of their own (the package's stack may be
running beside them, on the machine's own broker)."""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import anyio
import httpx
import msgspec
import pytest

from gozon.messages import ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE
from tests.e2e import cluster
from tests.e2e.burst import Burst
from tests.e2e.money import check_money
from tests.e2e.probe import probe
from tests.e2e.shopper import Shopper, TERMINAL, funded_user, results_until, wait_settled
from tests.settings import ARTIFACTS, SLOT, TEST_SETTINGS
from tests.support import Stack, reset_databases, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not cluster.AVAILABLE, reason="rabbitmq-server is not installed (deploy/services.sh installs it)"),
]

NAMES = ("gateway", "orders", "payments")
VHOST = "gozon"
_PORT = 27000 + 10 * SLOT
_SUFFIX = f"_{SLOT}" if SLOT else ""


def settings_for(amqp_url: str):
    return msgspec.structs.replace(
        TEST_SETTINGS,
        gateway_port=_PORT, orders_port=_PORT + 1, payments_port=_PORT + 2,
        orders_url=f"http://127.0.0.1:{_PORT + 1}", payments_url=f"http://127.0.0.1:{_PORT + 2}",
        orders_db=f"postgresql://postgres@127.0.0.1:5432/gozon_test{_SUFFIX}_cluster_orders",
        payments_db=f"postgresql://postgres@127.0.0.1:5432/gozon_test{_SUFFIX}_cluster_payments",
        amqp_url=amqp_url,
    )


def all_ready(stack: Stack) -> bool:
    return all(probe(stack[name].port, "/readyz")[0] == 200 for name in NAMES)


def log_events(stack: Stack, name: str, event: str) -> list[str]:
    return [line for line in stack[name].log_lines() if f'"event":"{event}"' in line]


@pytest.mark.timeout(420)
def test_kill_9_of_the_node_the_services_use_in_the_middle_of_a_burst(tmp_path: Path) -> None:
    nodes = cluster.Cluster(tmp_path / "rabbitmq")
    stack: Stack | None = None
    try:
        started = time.perf_counter()
        nodes.start()
        nodes.add_vhost(VHOST)
        cluster_up = time.perf_counter() - started
        settings = settings_for(nodes.urls(VHOST))
        anyio.run(reset_databases, settings)
        stack = Stack(settings, ARTIFACTS / "e2e-logs" / f"{time.strftime('%Y%m%dT%H%M%S')}-cluster-{SLOT}")
        for process in stack.processes.values():
            process.start()
        for process in stack.processes.values():
            process.wait_ready(timeout=60)

        first = nodes.nodes[0]
        names = {f"gozon {name}" for name in NAMES}
        connected = wait_until(lambda: (c := nodes.connections(first)) and names <= c.keys() and c, timeout=30,
                               interval=0.5, what="the three processes' connections")
        on = {connected[name] for name in names}
        assert on == {first.name}, f"every process connects to the first node listed first: {connected}"
        victim = nodes.node(on.pop())
        queues = nodes.queues(first, VHOST)
        gateway_queue = next(name for name in queues if name.startswith("gateway."))
        everyone = {node.name for node in nodes.nodes}
        for name in (ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE, gateway_queue):
            assert queues[name]["type"] == "quorum" and set(queues[name]["members"]) == everyone, queues[name]
        assert queues[ORDERS_QUEUE]["leader"] == victim.name, (
            f"the queues' leader is where they were declared, the node the processes use: {queues[ORDERS_QUEUE]}")

        with httpx.Client(base_url=stack.gateway_url, timeout=15,
                          limits=httpx.Limits(max_connections=32, max_keepalive_connections=32)) as client, \
                ExitStack() as sockets:
            rng = random.Random(11)
            deposits = {funded_user(client, 1000 + 250 * i): 1000 + 250 * i for i in range(10)}
            plan = [(user, rng.randint(20, 260)) for user in deposits for _ in range(20)]
            rng.shuffle(plan)
            # A WebSocket per user, and a second one for the first user.
            shoppers = [Shopper(stack.gateway_url, stack.ws_url, user) for user in [*deposits, next(iter(deposits))]]
            for shopper in shoppers:
                sockets.callback(shopper.http.close)
            websockets = [(shopper.user_id, sockets.enter_context(shopper.connect())) for shopper in shoppers]

            burst = Burst(client, plan, workers=16, retry_for=60).start()
            burst.wait_answered(50, timeout=60)
            killed_after = burst.answered()
            nodes.kill(victim)
            killed_at = time.perf_counter()
            burst.join(timeout=120)
            wait_until(lambda: all_ready(stack), timeout=60, interval=0.2,
                       what="every process ready again, on a live node")
            ready_after = time.perf_counter() - killed_at

            created = burst.created()
            assert len(created) == 200, burst.statuses()
            settled = wait_settled(client, list(deposits), set(created), timeout=120)
            settled_after = time.perf_counter() - killed_at
            check_money(client, deposits, settled, payments_db=settings.payments_db)
            orders = [o for user_orders in settled.values() for o in user_orders]
            assert len(orders) == 200 and all(o["status"] in TERMINAL for o in orders)
            outcome = Counter(o["status"] for o in orders)
            assert outcome["finished"] and outcome["cancelled"], outcome

            for user, ws in websockets:
                frames = results_until(ws, {o["id"] for o in settled[user]}, timeout=60)
                for order in settled[user]:
                    assert frames[order["id"]]["order_status"] == order["status"], (frames[order["id"]], order)

        survivor = next(node for node in nodes.nodes if node is not victim)
        now = nodes.connections(survivor)
        assert names <= now.keys() and victim.name not in {now[name] for name in names}, now
        assert nodes.queues(survivor, VHOST)[ORDERS_QUEUE]["leader"] != victim.name
        victim_node = f"127.0.0.1:{victim.amqp_port}"
        for name in NAMES:
            assert any(victim_node in line for line in log_events(stack, name, "broker connection lost")), name
            assert stack[name].running(), f"{name} died:\n{stack[name].tail()}"
        # A lost node is an outage, not a bug. (asyncpg's notice that it rolled back a
        # transaction which the lost session cut short is at error level, but no bug.)
        errors = [line for line in stack.errors() if "Resetting connection with an active transaction" not in line]
        assert not errors, "\n".join(errors[:10])
        codes = stack.stop()
        assert codes == dict.fromkeys(NAMES, 0), f"a process did not drain cleanly: {codes}"
        print(f"\ncluster of 3 up in {cluster_up:.1f} s; {victim.name} killed after {killed_after} answers: "
              f"answers {burst.statuses()}, {burst.retries} retried POSTs, {dict(outcome)}; every process ready "
              f"{ready_after:.1f} s and every order terminal {settled_after:.1f} s after the kill; now on "
              f"{sorted(set(now[name] for name in names))}")
    finally:
        if stack is not None:
            for process in stack.processes.values():
                if process.running():
                    process.kill()
        nodes.stop()
        shutil.rmtree(tmp_path / "rabbitmq", ignore_errors=True)
