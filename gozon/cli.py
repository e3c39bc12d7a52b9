"""`gozon` commands for developers: `gozon setup` creates and migrates both databases;
`gozon trace ORDER_ID|TRACE_ID [LOG ...]` tells one order's story from the logs;
`gozon reconcile [--stale-after MINUTES] [--json]` checks both databases against the
invariants: exit 0 if they hold, 1 on a break, 2 if a database cannot be read;
`gozon dlq [show|replay|purge] ...` acts on the dead letters (see `gozon.dlq`)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

import anyio

from gozon import dlq, logs, reconcile, trace
from gozon.config import Settings
from gozon.db import reconcile as reconcile_reads
from gozon.db.database import ensure_database
from gozon.db.migrate import migrate
from gozon.errors import DatabaseUnavailable
from gozon.orders import store as orders_store
from gozon.payments import store as payments_store


async def setup(settings: Settings) -> None:
    for dsn, migrations in ((settings.orders_db, orders_store.MIGRATIONS),
                            (settings.payments_db, payments_store.MIGRATIONS)):
        await ensure_database(dsn)
        await migrate(dsn, migrations)


async def reconcile_databases(settings: Settings, stale_after: timedelta, as_json: bool) -> int:
    def show(found: reconcile.Break) -> None:
        if not as_json:  # a line as each is found: a long run shows its progress
            print(found.line(), flush=True)

    try:
        async with reconcile_reads.snapshots(settings.orders_db, settings.payments_db) as (orders, payments, taken_at):
            report = await reconcile.reconcile(orders.orders(), payments.payments(), payments.accounts(),
                                               taken_at=taken_at, stale_after=stale_after, on_break=show)
    except DatabaseUnavailable as exc:
        print(f"gozon reconcile: cannot read {exc}", file=sys.stderr)
        return 2
    print(report.to_json().decode() if as_json else report.summary())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gozon")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="create the databases if missing and apply migrations")
    tracing = commands.add_parser("trace", help="one order's steps across the services, from their JSON logs")
    tracing.add_argument("key", metavar="ORDER_ID|TRACE_ID")
    tracing.add_argument("logs", nargs="*", metavar="LOG",
                         help="log files, plain or as honcho or `docker compose logs` print them"
                              " (default: standard input)")
    checking = commands.add_parser("reconcile", help="check both databases against the invariants (spec §5)")
    checking.add_argument("--stale-after", type=float, default=60, metavar="MINUTES",
                          help="an order still new after this long is a break (default 60)")
    checking.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    dlq.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "trace":
        sys.exit(trace.run(args.key, args.logs))
    settings = Settings.from_env()
    if args.command == "reconcile":  # reports on standard output, logs nothing
        sys.exit(anyio.run(reconcile_databases, settings, timedelta(minutes=args.stale_after), args.json))
    if args.command == "dlq":  # the same
        sys.exit(anyio.run(dlq.run, settings, args))
    logs.configure("gozon", fmt=settings.log_format, level=settings.log_level, file=settings.log_file)
    if args.command == "setup":
        anyio.run(setup, settings)


if __name__ == "__main__":
    main()
