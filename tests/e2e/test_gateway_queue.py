"""Every result reaches a WebSocket that stayed open while the gateway lost its broker
connection (spec §3): each gateway replica consumes a durable queue of its own,
`gateway.<replica id>`, the same one across restarts, deleted by the broker once the
replica has been gone for GOZON_GATEWAY_QUEUE_EXPIRY."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.e2e.shopper import Shopper, funded_user, results_until
from tests.settings import TEST_SETTINGS, VHOST, rabbitmqctl
from tests.support import Stack, wait_until

pytestmark = pytest.mark.e2e


def gateway_connections() -> list[str]:
    """The pids of the gateway's AMQP connections to the test vhost, as close_connection
    takes them (list_connections lists every vhost's: the broker is shared)."""
    listed = rabbitmqctl("list_connections", "pid", "vhost", "client_properties", "--quiet", "--no-table-headers")
    rows = [line.split("\t") for line in listed.splitlines() if line.strip()]
    return [row[0] for row in rows if len(row) == 3 and row[1] == VHOST and '"gozon gateway"' in row[2]]


def _pairs(properties) -> list[tuple[str, object]]:
    # rabbitmqctl prints AMQP tables as [name, type, value] triples (or a mapping).
    if isinstance(properties, dict):
        return list(properties.items())
    return [(entry[0], entry[-1]) for entry in properties]


def gateway_queues() -> dict[str, dict]:
    listed = json.loads(rabbitmqctl("list_queues", "-p", VHOST, "name", "arguments", "durable",
                                    "--formatter", "json", "--quiet"))
    return {q["name"]: q for q in listed if q["name"].startswith("gateway.")}


def place_every(shopper: Shopper, interval: float, count: int, placed: list[int]) -> threading.Thread:
    def place() -> None:
        for _ in range(count):
            placed.append(shopper.order(10)["id"])
            time.sleep(interval)  # the pace of the load, not a wait for anything

    thread = threading.Thread(target=place, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(180)
def test_no_result_is_missed_while_the_gateway_reconnects_to_the_broker(running: Stack, client: httpx.Client) -> None:
    user = funded_user(client, 100_000)
    shopper = Shopper(running.gateway_url, running.ws_url, user)
    gateway_pid = running["gateway"].proc.pid
    placed: list[int] = []
    try:
        with shopper.connect() as ws:
            load = place_every(shopper, 0.1, 50, placed)
            wait_until(lambda: len(placed) >= 15, timeout=30, what="15 orders placed")
            [connection] = wait_until(gateway_connections, timeout=10, what="the gateway's AMQP connection")
            rabbitmqctl("close_connection", connection, "test: only the gateway's connection")
            load.join(60)
            assert len(placed) == 50
            frames = results_until(ws, set(placed), timeout=60)
            assert wait_until(lambda: gateway_connections() and gateway_connections()[0] != connection,
                              timeout=30, what="the gateway to reconnect by itself")
    finally:
        shopper.http.close()
    assert {f["order_status"] for f in frames.values()} == {"finished"}
    assert running["gateway"].proc.pid == gateway_pid and running["gateway"].running()
    lost = sum('"event":"broker connection lost"' in line for line in running["gateway"].log_lines())
    assert lost >= 1, "the gateway's connection was never closed: the test proved nothing"


def test_the_gateway_keeps_its_queue_across_a_restart_and_the_broker_expires_it(running: Stack) -> None:
    before = gateway_queues()
    assert len(before) == 1, before
    [(name, queue)] = before.items()
    assert queue["durable"] is True
    assert dict(_pairs(queue["arguments"])).get("x-expires") == int(TEST_SETTINGS.gateway_queue_expiry * 1000)

    assert running["gateway"].stop() == 0
    assert name in gateway_queues(), "the queue went with the gateway: results published now would be lost"
    running["gateway"].start()
    running["gateway"].wait_ready()
    assert list(gateway_queues()) == [name], "a restarted gateway must consume the same queue"
