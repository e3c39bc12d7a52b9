"""The WebSocket hub under abuse: a burst of connects and disconnects (clean, abrupt,
refused) and of garbage (binary, oversized, invalid UTF-8, not even WebSocket) leaves
it serving every other user, with no connection leaked; a handshake without a valid
`user_id` is refused with a reason in words."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.e2e.shopper import Shopper, funded_user, next_result
from tests.support import Stack, wait_until

BURST = 240  # connections, 16 at a time


def _raw_handshake(port: int, user_id: int) -> socket.socket:
    """A WebSocket opened by hand, to send what no client library would."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?user_id={user_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, f"the handshake was cut: {answer!r}"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    header = bytes([0x80 | opcode]) + (bytes([0x80 | len(payload)]) if len(payload) < 126
                                         else bytes([0x80 | 126]) + struct.pack("!H", len(payload)))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _drain(sock: socket.socket) -> None:
    """Read until the server closes (it must, after garbage), bounded by the timeout."""
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _abuse(kind: str, url: str, port: int, user_id: int) -> None:
    if kind == "clean":
        with connect(f"{url}?user_id={user_id}", open_timeout=10) as ws:
            ws.send("ping")
            ws.recv(timeout=10)
    elif kind == "abrupt":  # the TCP connection dropped without a close frame
        _raw_handshake(port, user_id).close()
    elif kind == "refused":
        with pytest.raises(InvalidStatus):
            connect(f"{url}?user_id=-{user_id}", open_timeout=10).close()
    elif kind == "garbage_frames":
        with connect(f"{url}?user_id={user_id}", open_timeout=10, max_size=None) as ws:
            ws.send(os.urandom(512))  # binary
            ws.send("{not json")
            ws.send("PING " * 50_000)  # 250 KB of text
            ws.send("ping")
            ws.recv(timeout=10)
    elif kind == "invalid_utf8":
        sock = _raw_handshake(port, user_id)
        sock.sendall(_masked_frame(0x1, b"\xff\xfe\xfd"))
        _drain(sock)
    elif kind == "not_websocket":  # random bytes where frames should be
        sock = _raw_handshake(port, user_id)
        sock.sendall(os.urandom(2048))
        _drain(sock)
    elif kind == "not_http":
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(os.urandom(1024))
        _drain(sock)


KINDS = ["clean", "abrupt", "refused", "garbage_frames", "invalid_utf8", "not_websocket", "not_http"]


@contextmanager
def _shopper(stack: Stack, client: httpx.Client, deposit: int) -> Iterator[Shopper]:
    """A new user with an account holding `deposit`, as the page would drive it."""
    shopper = Shopper(stack.gateway_url, stack.ws_url, funded_user(client, deposit))
    try:
        yield shopper
    finally:
        shopper.http.close()


def _open_connections(stack: Stack) -> int | None:
    """The hub's connection count as last logged by the gateway."""
    counts = [json.loads(line)["connections"] for line in stack["gateway"].log_lines()
              if '"websocket connected"' in line or '"websocket disconnected"' in line]
    return counts[-1] if counts else None


def test_a_burst_of_connections_and_garbage_leaves_the_hub_serving_others(
        running: Stack, client: httpx.Client) -> None:
    gateway_pid = running["gateway"].proc.pid
    errors_before = len(running.errors())
    with _shopper(running, client, 1000) as watcher, watcher.connect() as ws:
        kinds = [KINDS[i % len(KINDS)] for i in range(BURST)]
        random.shuffle(kinds)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: _abuse(k, running.ws_url, running["gateway"].port,
                                           random.randrange(1, 2**62)), kinds))

        # Every abusive connection is gone from the hub: only the watcher's is left.
        wait_until(lambda: _open_connections(running) == 1, timeout=15, what="the hub to count 1 connection")
        # The watcher still gets its result, once.
        order = watcher.order(300)
        assert next_result(ws)["order_id"] == order["id"]
        ws.send("ping")
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}, "a duplicate or stray frame"

    # And a newcomer is served as well.
    with _shopper(running, client, 50) as newcomer, newcomer.connect() as ws:
        order = newcomer.order(80)
        frame = next_result(ws)
    assert (frame["order_id"], frame["status"], frame["reason"]) == (order["id"], "failed", "insufficient_funds")
    assert running["gateway"].proc.pid == gateway_pid and running["gateway"].running(), "the gateway restarted"
    assert running.errors()[errors_before:] == [], "a process logged an error"


@pytest.mark.parametrize("query", ["", "?user_id=", "?user_id=abc", "?user_id=0", "?user_id=1.5",
                                   f"?user_id={2**63}", "?user=5"])
def test_a_websocket_without_a_valid_user_id_is_refused_with_a_reason(running: Stack, query: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{running.ws_url}{query}", open_timeout=10).close()
    response = refused.value.response
    assert response.status_code == 422, response.status_code
    body = json.loads(response.body)
    assert body["error"] == "invalid_user_id" and body["field"] == "user_id", body
    assert "user_id=N" in body["message"] and "9223372036854775807" in body["message"], body["message"]


def test_plain_http_on_the_websocket_route_says_to_use_a_websocket(client: httpx.Client) -> None:
    response = client.get("/ws", params={"user_id": 1})
    assert response.status_code == 426 and response.headers["upgrade"] == "websocket"
    assert response.json()["error"] == "websocket_required", response.json()


def test_a_closed_connection_gets_nothing_and_breaks_nothing(running: Stack, client: httpx.Client) -> None:
    """A client that leaves while its result is on the way: the result is dropped for it
    and still reaches the user's other connection."""
    with _shopper(running, client, 500) as shopper, shopper.connect() as staying:
        with shopper.connect() as leaving:
            order = shopper.order(100)
        with pytest.raises(ConnectionClosed):
            leaving.recv(timeout=1)
        assert next_result(staying)["order_id"] == order["id"]
