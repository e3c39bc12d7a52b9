"""A service app's operational endpoints against the real PostgreSQL and RabbitMQ:
`/readyz` asks its dependencies now, within a bound, and names what failed; `/metrics`
reads the outbox backlog at scrape time, counts what the relay published, and labels
requests by route, never by raw path."""

from __future__ import annotations

import math

import anyio
import pytest
from prometheus_client import REGISTRY, generate_latest

from gozon import metrics
from gozon.actors.relay import OutboxRelay
from gozon.amqp.broker import Broker
from gozon.db import Database, outbox
from gozon.messages import ORDERS_QUEUE, PaymentRequested
from gozon.web.app import CHECK_TIMEOUT, create_app
from gozon.web.errors import json_response
from tests.integration.helpers import drain, eventually, running
from tests.settings import TEST_SETTINGS

MAX_BODY = TEST_SETTINGS.max_body_bytes

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PENDING = "gozon_outbox_pending_rows"
OLDEST = "gozon_outbox_oldest_pending_age_seconds"
PUBLISHED = "gozon_outbox_published_total"
SET_ASIDE = "gozon_outbox_set_aside_rows"
REQUESTS = "gozon_http_request_duration_seconds_count"


def sample(name: str, **labels: str) -> float:
    """The sample's value in this process's registry; absent (never incremented) is 0."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_readyz_asks_each_dependency_now_and_names_the_ones_that_failed(orders_db: Database) -> None:
    async def hangs() -> None:
        await anyio.sleep_forever()

    never_connected = Database(TEST_SETTINGS.orders_db, [])
    ready = create_app("ready", {"database": orders_db.ping, "broker": lambda: True}, max_body=MAX_BODY).test_client()
    not_ready = create_app("not_ready", {"database": orders_db.ping, "other_database": never_connected.ping,
                                         "broker": lambda: True, "stuck": hangs}, max_body=MAX_BODY).test_client()
    with anyio.fail_after(CHECK_TIMEOUT + 5):
        up = await ready.get("/readyz")
        down = await not_ready.get("/readyz")
    assert (up.status_code, await up.get_json()) == (200, {"status": "ready",
                                                          "checks": {"database": True, "broker": True}})
    assert (down.status_code, await down.get_json()) == (503, {"status": "not_ready", "checks": {
        "database": True, "other_database": False, "broker": True, "stuck": False}})


async def test_requests_are_counted_by_route_and_status_not_by_path() -> None:
    app = create_app("routes", {}, max_body=MAX_BODY)

    @app.get("/things/<int:n>")
    async def thing(n: int):
        return json_response({"n": n})

    client = app.test_client()
    counted = [("GET", "/things/<int:n>", "200"), ("GET", metrics.UNMATCHED, "404"),
               ("other", metrics.UNMATCHED, "405")]
    before = {labels: sample(REQUESTS, method=labels[0], route=labels[1], status=labels[2]) for labels in counted}
    for path, method in (("/things/1", "GET"), ("/things/2", "GET"), ("/nowhere/3", "GET"), ("/things/1", "BREW")):
        await client.open(path, method=method)
    page = await client.get("/metrics")

    moved = {labels: sample(REQUESTS, method=labels[0], route=labels[1], status=labels[2]) - before[labels]
             for labels in counted}
    assert moved == {counted[0]: 2, counted[1]: 1, counted[2]: 1}
    assert page.content_type.startswith("text/plain")
    text = (await page.get_data()).decode()
    assert "gozon_http_request_duration_seconds_bucket" in text
    assert "/nowhere/3" not in text and "BREW" not in text


async def test_the_outbox_backlog_is_read_at_scrape_time_and_published_rows_are_counted(
        orders_db: Database, broker: Broker) -> None:
    async with orders_db.acquire() as con, con.transaction():
        for n in range(1, 4):
            await outbox.append(con, PaymentRequested(order_id=n, user_id=1, amount=n), None)
        await con.execute("UPDATE outbox SET created_at = now() - interval '1 minute'"
                          " WHERE id = (SELECT min(id) FROM outbox)")
    scrape = outbox.backlog_gauges(orders_db)
    await scrape()
    assert sample(PENDING) == 3
    assert sample(OLDEST) >= 60
    published = sample(PUBLISHED)

    async def drained() -> bool:
        await scrape()
        return sample(PENDING) == 0

    async with running(OutboxRelay(orders_db, broker, batch=10, poll_interval=0.1)):
        await eventually(drained, what="the relay to publish the three rows")
    assert sample(PUBLISHED) - published == 3
    assert sample(OLDEST) == 0
    assert len(await drain(ORDERS_QUEUE)) == 3


async def test_the_outbox_backlog_is_not_a_number_while_the_database_is_unreachable() -> None:
    await outbox.backlog_gauges(Database(TEST_SETTINGS.orders_db, []))()
    assert math.isnan(sample(PENDING)) and math.isnan(sample(OLDEST)) and math.isnan(sample(SET_ASIDE))
    assert b"gozon_outbox_pending_rows NaN" in generate_latest()
