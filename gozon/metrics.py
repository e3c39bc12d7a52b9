"""Every metric a service exposes at `GET /metrics` (Prometheus text format).

Each service is a process of its own and uses the default registry (which adds the
`process_*` and `python_*` metrics), so no metric names its service: the scrape target does.
deploy/prometheus/ scrapes them (a job per service) and alerts on them; deploy/grafana/
draws them.

    gozon_http_request_duration_seconds{method,route,status}  histogram; `_count` = requests
    gozon_ready{check}                             1 while a /readyz check passes, else 0; run at each scrape
    gozon_orders_placed_total                      orders created (orders)
    gozon_order_settle_duration_seconds{status}    histogram: an order's creation to its result (orders);
                                                   `_count` = orders settled, by `finished`/`cancelled`
    gozon_outbox_pending_rows                      gauge, read from the database at each scrape
    gozon_outbox_oldest_pending_age_seconds        gauge, read from the database at each scrape
    gozon_outbox_published_total                   rows the broker confirmed and the relay marked sent
    gozon_outbox_set_aside_total                   rows the broker refused for good (unroutable), set aside
    gozon_outbox_set_aside_rows                    gauge, read from the database at each scrape
    gozon_inbox_processed_total                    messages handled and acked (duplicates included)
    gozon_inbox_duplicates_skipped_total           messages whose id was already in the inbox
    gozon_inbox_dead_lettered_total{queue}         poison messages moved from `queue` to its `.dlq`
    gozon_ws_connections                           WebSocket connections open (gateway)
    gozon_ws_frames_sent_total                     WebSocket text frames sent (gateway)
    gozon_actor_restarts_total{actor}              crashed actors restarted by the supervisor

A labelled counter shows up at 0 for each queue consumed and each actor supervised, from
the start: Prometheus' `increase()` then sees their first increment too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Histogram(
    "gozon_http_request_duration_seconds", "HTTP requests and how long they took, by route and status",
    ["method", "route", "status"],
)
READY = Gauge("gozon_ready", "Whether a /readyz check passes (1) or not (0)", ["check"])
ORDERS_PLACED = Counter("gozon_orders_placed", "Orders created")
# From a few ms (idle) through seconds (under load) to minutes (a backlog after an outage).
ORDER_SETTLE = Histogram(
    "gozon_order_settle_duration_seconds", "Seconds from an order's creation to its payment result, by its status",
    ["status"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
OUTBOX_PENDING = Gauge("gozon_outbox_pending_rows", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge("gozon_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_PUBLISHED = Counter("gozon_outbox_published", "Outbox rows published and marked sent")
OUTBOX_SET_ASIDE = Counter("gozon_outbox_set_aside", "Outbox rows the broker refused for good, set aside")
OUTBOX_SET_ASIDE_ROWS = Gauge("gozon_outbox_set_aside_rows", "Outbox rows set aside, waiting for an operator")
INBOX_PROCESSED = Counter("gozon_inbox_processed", "Inbox messages handled and acked, duplicates included")
INBOX_DUPLICATES = Counter("gozon_inbox_duplicates_skipped", "Inbox messages skipped as already handled")
INBOX_DEAD_LETTERED = Counter("gozon_inbox_dead_lettered", "Poison messages moved to the dead-letter queue",
                              ["queue"])
WS_CONNECTIONS = Gauge("gozon_ws_connections", "WebSocket connections open")
WS_FRAMES_SENT = Counter("gozon_ws_frames_sent", "WebSocket text frames sent")
ACTOR_RESTARTS = Counter("gozon_actor_restarts", "Crashed actors restarted", ["actor"])

# Route labels are URL rules, never raw paths, and methods a fixed set: the label values
# stay few whatever clients send.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method if method in _METHODS else "other", route or UNMATCHED, str(status)).observe(seconds)


def actor_restarted(name: str) -> None:
    ACTOR_RESTARTS.labels(actor=name).inc()


def actors_supervised(names: Iterable[str]) -> None:
    """Show each actor's restarts, at 0 until the first."""
    for name in names:
        ACTOR_RESTARTS.labels(actor=name)


def checked(state: Mapping[str, bool]) -> None:
    """Record what each readiness check answered."""
    for check, up in state.items():
        READY.labels(check=check).set(up)
