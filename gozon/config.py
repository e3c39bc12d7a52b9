"""Every setting of every process, with a working local default: the field `foo_bar`
is read from the environment variable `GOZON_FOO_BAR`.

`Settings.from_env()` is the only place that reads the environment; the README lists
the same table (a test keeps the two equal).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import msgspec

PREFIX = "GOZON_"


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
    # A file each process also appends its log lines to, as JSON whatever `log_format`
    # says (for `gozon trace`); empty: none.
    log_file: str = ""
    outbox_batch: int = 200
    outbox_poll_interval: float = 1.0
    # What is kept, and for how long (spec §2 and §6 ask for at least 24 h and 7 days).
    outbox_retention_hours: float = 24.0
    inbox_retention_days: float = 7.0
    idempotency_key_retention_hours: float = 24.0
    purge_interval: float = 600.0
    # Messages handled at once per consumer: `inbox_workers` transactions of up to
    # `inbox_batch` messages each; new orders are written up to `order_batch` a transaction.
    inbox_workers: int = 1
    inbox_batch: int = 32
    order_batch: int = 64
    ws_queue_size: int = 64
    # The gateway replica's own queue, `gateway.<id>` (by default `<host name>-<port>`,
    # stable across restarts), deleted by the broker once the replica is gone this long.
    gateway_id: str = ""
    gateway_queue_expiry: float = 300.0
    # Larger request bodies are refused with 413.
    max_body_bytes: int = 64 * 1024
    # The shopper's page the gateway serves at `/`: by default the checkout's `client/`.
    client_dir: str = str(Path(__file__).resolve().parent.parent / "client")
    # A process whose actors crash more than max_restarts times within
    # restart_window seconds exits non-zero and leaves the rest to its own supervisor.
    max_restarts: int = 5
    restart_window: float = 30.0
    # A process whose parent (honcho, a test run) is gone drains and stops by itself;
    # false for one meant to outlive the shell that started it (nohup).
    stop_with_parent: bool = True

    @property
    def gateway_replica(self) -> str:
        return self.gateway_id or f"{socket.gethostname()}-{self.gateway_port}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read the settings; a malformed value stops the process with a clear message."""
        environ = os.environ if environ is None else environ
        given = {field: environ[var] for field, var in ENVIRONMENT.items() if var in environ}
        try:
            return msgspec.convert(given, cls, strict=False)
        except msgspec.ValidationError as exc:
            # msgspec names the field (`$.gateway_port`); the user set the variable.
            message = re.sub(r"`\$\.(\w+)`", lambda m: ENVIRONMENT.get(m.group(1), m.group(1)), str(exc))
            raise SystemExit(f"gozon: bad setting: {message}") from None


# field → environment variable, for every setting.
ENVIRONMENT = {field: PREFIX + field.upper() for field in Settings.__struct_fields__}
