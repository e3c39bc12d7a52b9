"""Every setting of every process: one environment variable each, with a local default.

`Settings.from_env()` is the only place that reads the environment; the README lists
the same table.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

# (field, environment variable) for every setting; the defaults live on the Struct.
ENVIRONMENT = {
    "host": "GOZON_HOST",
    "gateway_port": "GOZON_GATEWAY_PORT",
    "orders_port": "GOZON_ORDERS_PORT",
    "payments_port": "GOZON_PAYMENTS_PORT",
    "orders_db": "GOZON_ORDERS_DB",
    "payments_db": "GOZON_PAYMENTS_DB",
    "db_pool_size": "GOZON_DB_POOL_SIZE",
    "amqp_url": "GOZON_AMQP_URL",
    "orders_url": "GOZON_ORDERS_URL",
    "payments_url": "GOZON_PAYMENTS_URL",
    "proxy_timeout": "GOZON_PROXY_TIMEOUT",
    "log_format": "GOZON_LOG_FORMAT",
    "log_level": "GOZON_LOG_LEVEL",
    "outbox_batch": "GOZON_OUTBOX_BATCH",
    "outbox_poll_interval": "GOZON_OUTBOX_POLL_INTERVAL",
    "outbox_retention_hours": "GOZON_OUTBOX_RETENTION_HOURS",
    "inbox_workers": "GOZON_INBOX_WORKERS",
    "ws_queue_size": "GOZON_WS_QUEUE_SIZE",
    "client_dir": "GOZON_CLIENT_DIR",
    "max_restarts": "GOZON_MAX_RESTARTS",
    "restart_window": "GOZON_RESTART_WINDOW",
}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    orders_port: int = 8081
    payments_port: int = 8082
    orders_db: str = "postgresql://postgres@127.0.0.1:5432/gozon_orders"
    payments_db: str = "postgresql://postgres@127.0.0.1:5432/gozon_payments"
    db_pool_size: int = 10
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    orders_url: str = "http://127.0.0.1:8081"
    payments_url: str = "http://127.0.0.1:8082"
    proxy_timeout: float = 10.0
    # "json", "console", or "auto" (console on a terminal, JSON otherwise).
    log_format: str = "auto"
    log_level: str = "info"
    outbox_batch: int = 200
    outbox_poll_interval: float = 1.0
    outbox_retention_hours: float = 24.0
    inbox_workers: int = 8
    ws_queue_size: int = 64
    # The shopper's page the gateway serves at `/`: by default the checkout's `client/`.
    client_dir: str = str(Path(__file__).resolve().parent.parent / "client")
    # A process whose actors crash more than max_restarts times within
    # restart_window seconds exits non-zero and leaves the rest to its own supervisor.
    max_restarts: int = 5
    restart_window: float = 30.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read the settings; a malformed value stops the process with a clear message."""
        environ = os.environ if environ is None else environ
        given = {field: environ[var] for field, var in ENVIRONMENT.items() if var in environ}
        try:
            return msgspec.convert(given, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SystemExit(f"gozon: bad setting: {exc}") from None
