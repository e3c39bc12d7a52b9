"""Every metric a service exposes at `GET /metrics` (Prometheus text format).

Each service is a process of its own and uses the default registry (which adds the
`process_*` and `python_*` metrics), so no metric names its service: the scrape target does.

    gozon_http_request_duration_seconds{method,route,status}  histogram; `_count` = requests
    gozon_outbox_pending_rows                      gauge, read from the database at each scrape
    gozon_outbox_oldest_pending_age_seconds        gauge, read from the database at each scrape
    gozon_outbox_published_total                   rows the broker confirmed and the relay marked sent
    gozon_outbox_set_aside_total                   rows the broker refused for good (unroutable), set aside
    gozon_outbox_set_aside_rows                    gauge, read from the database at each scrape
    gozon_inbox_processed_total                    messages handled and acked (duplicates included)
    gozon_inbox_duplicates_skipped_total           messages whose id was already in the inbox
    gozon_inbox_dead_lettered_total                poison messages moved to their `.dlq`
    gozon_ws_connections                           WebSocket connections open (gateway)
    gozon_ws_frames_sent_total                     WebSocket text frames sent (gateway)
    gozon_actor_restarts_total{actor}              crashed actors restarted by the supervisor
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Histogram(
    "gozon_http_request_duration_seconds", "HTTP requests and how long they took, by route and status",
    ["method", "route", "status"],
)
OUTBOX_PENDING = Gauge("gozon_outbox_pending_rows", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge("gozon_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_PUBLISHED = Counter("gozon_outbox_published", "Outbox rows published and marked sent")
OUTBOX_SET_ASIDE = Counter("gozon_outbox_set_aside", "Outbox rows the broker refused for good, set aside")
OUTBOX_SET_ASIDE_ROWS = Gauge("gozon_outbox_set_aside_rows", "Outbox rows set aside, waiting for an operator")
INBOX_PROCESSED = Counter("gozon_inbox_processed", "Inbox messages handled and acked, duplicates included")
INBOX_DUPLICATES = Counter("gozon_inbox_duplicates_skipped", "Inbox messages skipped as already handled")
INBOX_DEAD_LETTERED = Counter("gozon_inbox_dead_lettered", "Poison messages moved to the dead-letter queue")
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
