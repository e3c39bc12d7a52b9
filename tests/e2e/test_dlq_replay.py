"""`gozon dlq replay` into the real payments service, interrupted: orders whose payment
requests ended in orders_queue.dlq (put there by the consumer's own dead-letter path)
are replayed; the replay is killed with SIGKILL after a few, then run again. Every
order ends finished with exactly one debit, and the dead-letter queue ends empty."""

from __future__ import annotations

import signal
import subprocess

import anyio
import httpx

from gozon.amqp.consumer import dead_letter
from gozon.amqp.deadletters import REPLAY_BATCH
from gozon.amqp.topology import dead_letter_queue
from gozon.messages import ORDERS_QUEUE
from tests.e2e.money import check_money, check_reconciled
from tests.e2e.shopper import funded_user, orders_of, wait_settled
from tests.integration.helpers import amqp_channel, eventually, ready_count
from tests.settings import environment
from tests.support import GOZON, ROOT, Stack

DLQ = dead_letter_queue(ORDERS_QUEUE)
# More than a replay's batch, so that a kill after its first line lands while the rest wait.
ORDERS = 2 * REPLAY_BATCH + 50
AMOUNT = 10


def test_an_interrupted_replay_run_again_charges_each_order_once(running: Stack, client: httpx.Client) -> None:
    user = funded_user(client, ORDERS * AMOUNT)
    assert running["payments"].stop() == 0
    try:
        placed = [client.post("/orders", json={"user_id": user, "amount": AMOUNT}) for _ in range(ORDERS)]
        assert [p.status_code for p in placed] == [201] * ORDERS, [p.text for p in placed]
        # One request dead-lettered twice: the copy an interrupted replay would leave behind.
        anyio.run(_dead_letter_the_requests, ORDERS, 1)
    finally:
        running.start()
    ids = {p.json()["id"] for p in placed}
    assert {o["status"] for o in orders_of(client, user)} == {"new"}, "an order was paid without its request"

    with subprocess.Popen([*GOZON, "dlq", "replay", DLQ, "--all"], env=environment(), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as replay:
        replayed = [replay.stdout.readline()]
        replay.send_signal(signal.SIGKILL)
        replay.wait(10)
    assert replayed[0].startswith("replayed "), replayed
    assert anyio.run(ready_count, DLQ) > 0, "the killed replay had nothing left: it interrupted nothing"

    again = subprocess.run([*GOZON, "dlq", "replay", DLQ, "--all"], env=environment(), cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    settled = wait_settled(client, [user], ids, timeout=60)
    assert {o["status"] for o in settled[user]} == {"finished"}, settled
    check_money(client, {user: ORDERS * AMOUNT}, settled)
    check_reconciled()
    anyio.run(lambda: eventually(lambda: _is_empty(DLQ), what=f"{DLQ} empty"))


async def _dead_letter_the_requests(count: int, twice: int) -> None:
    """Move the `count` payment requests waiting in orders_queue to its dead-letter
    queue as the consumer does, the first `twice` of them twice."""
    await eventually(lambda: _has(ORDERS_QUEUE, count), what=f"{count} payment requests in {ORDERS_QUEUE}")
    async with amqp_channel() as channel:
        queue = await channel.get_queue(ORDERS_QUEUE, ensure=False)
        for n in range(count):
            with anyio.fail_after(10):
                message = await queue.get(no_ack=False, timeout=5)
            for _ in range(2 if n < twice else 1):
                await dead_letter(channel, ORDERS_QUEUE, message, "payments refused it (test)")
            await message.ack()


async def _has(queue: str, count: int) -> bool:
    return await ready_count(queue) >= count


async def _is_empty(queue: str) -> bool:
    return await ready_count(queue) == 0
