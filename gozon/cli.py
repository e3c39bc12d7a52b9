"""`gozon` commands for developers: `gozon setup` creates and migrates both databases;
`gozon trace ORDER_ID|TRACE_ID [LOG ...]` tells one order's story from the logs."""

from __future__ import annotations

import argparse
import sys

import anyio

from gozon import logs, trace
from gozon.config import Settings
from gozon.db.database import ensure_database
from gozon.db.migrate import migrate
from gozon.orders import store as orders_store
from gozon.payments import store as payments_store


async def setup(settings: Settings) -> None:
    for dsn, migrations in ((settings.orders_db, orders_store.MIGRATIONS),
                            (settings.payments_db, payments_store.MIGRATIONS)):
        await ensure_database(dsn)
        await migrate(dsn, migrations)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gozon")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="create the databases if missing and apply migrations")
    tracing = commands.add_parser("trace", help="one order's steps across the services, from their JSON logs")
    tracing.add_argument("key", metavar="ORDER_ID|TRACE_ID")
    tracing.add_argument("logs", nargs="*", metavar="LOG",
                         help="log files, plain or as honcho or `docker compose logs` print them"
                              " (default: standard input)")
    args = parser.parse_args(argv)
    if args.command == "trace":
        sys.exit(trace.run(args.key, args.logs))
    settings = Settings.from_env()
    logs.configure("gozon", fmt=settings.log_format, level=settings.log_level)
    if args.command == "setup":
        anyio.run(setup, settings)
