"""`gozon dlq`: the dead-letter queues and the outbox rows set aside, for an operator.

    gozon dlq                                         each queue: count, oldest, reasons
    gozon dlq show QUEUE [--limit N]                  its messages, left in place
    gozon dlq replay QUEUE (--id ID ... | --all) [--dry-run]
    gozon dlq purge QUEUE (--id ID ... | --all) [--yes]

QUEUE is a dead-letter queue (`orders_queue.dlq`...) or a service's outbox, whose rows
set aside stand in for its messages (`orders.outbox`, `payments.outbox`). Reports go to
standard output; exit 0 when done, 1 when a replay or purge left something undone, 2
when the input is wrong or the broker or a database cannot be used (one line on stderr)."""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from gozon.actors import set_aside
from gozon.actors.relay import destination
from gozon.amqp import deadletters
from gozon.amqp.deadletters import DeadLetter, NoSuchQueue, Replayed
from gozon.config import Settings
from gozon.db import outbox
from gozon.db.database import connected as database
from gozon.errors import BrokerUnavailable, DatabaseUnavailable

SHOW_LIMIT = 20
BODY_SHOWN = 2_000


class Refused(Exception):
    """What the operator asked cannot be done as asked: nothing was changed."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    dlq = commands.add_parser("dlq", help="the dead-letter queues and the outbox rows set aside: list, show, "
                                          "replay, purge")
    verbs = dlq.add_subparsers(dest="verb")
    show = verbs.add_parser("show", help="print a queue's messages without consuming them")
    show.add_argument("queue", metavar="QUEUE")
    show.add_argument("--limit", type=_positive, default=SHOW_LIMIT, metavar="N",
                      help=f"the first N messages (default {SHOW_LIMIT})")
    for verb, what in (("replay", "send messages back to their original queue, under publisher confirms"),
                       ("purge", "delete messages for good")):
        parser = verbs.add_parser(verb, help=what)
        parser.add_argument("queue", metavar="QUEUE")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", dest="ids", action="append", metavar="MESSAGE_ID", help="this message (repeatable)")
        which.add_argument("--all", action="store_true", help="every message of the queue")
    verbs.choices["replay"].add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    verbs.choices["purge"].add_argument("--yes", action="store_true", help="do not ask for confirmation")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    # What goes wrong is told on stderr in one line; the libraries' own log lines (aiormq
    # logs a refused connection) would only repeat it.
    logging.disable(logging.CRITICAL)
    outboxes = {"orders.outbox": settings.orders_db, "payments.outbox": settings.payments_db}
    try:
        if args.verb is None:
            return await _list(settings, outboxes)
        if args.queue not in (*deadletters.QUEUES, *outboxes):
            raise Refused(f"no such dead-letter queue: {args.queue!r} (there are"
                          f" {', '.join([*deadletters.QUEUES, *outboxes])})")
        dsn = outboxes.get(args.queue)
        if args.verb == "show":
            return await _show(settings, args.queue, dsn, args.limit)
        ids = None if args.all else args.ids
        if dsn is not None and ids is not None:
            ids = [_message_id(i) for i in ids]
        if args.verb == "replay":
            return await _replay(settings, args.queue, dsn, ids, args.dry_run)
        return await _purge(settings, args.queue, dsn, ids, args.yes)
    except (Refused, NoSuchQueue) as exc:
        return _failed(str(exc))
    except BrokerUnavailable as exc:
        return _failed(f"broker unavailable: {exc}")
    except DatabaseUnavailable as exc:
        return _failed(f"cannot read {exc}")


async def _list(settings: Settings, outboxes: dict[str, str]) -> int:
    async with deadletters.connected(settings.amqp_url) as connection:
        for queue in deadletters.QUEUES:
            found = await deadletters.summary(connection, queue)
            read = f" (reasons of the first {found.read:,} read)" if found.read < found.count else ""
            print(_line(queue, found.count, "message", found.oldest) + read)
            _reasons(found.reasons.items())
    for name, dsn in outboxes.items():
        async with database(dsn) as con:
            reasons = await outbox.set_aside_reasons(con)
        print(_line(f"{name} (outbox rows set aside)", sum(n for _, n, _ in reasons), "row",
                    min((oldest for _, _, oldest in reasons), default=None)))
        _reasons((reason, n) for reason, n, _ in reasons)
    return 0


async def _show(settings: Settings, queue: str, dsn: str | None, limit: int) -> int:
    if dsn is not None:
        async with database(dsn) as con:
            for row in await outbox.set_aside_rows(con, limit):
                _message(str(row.envelope.message_id), row.envelope.message_type, row.reason,
                         f"destination:    {destination(row.envelope)}", row.set_aside_at, row.envelope.body)
        return 0
    async with deadletters.connected(settings.amqp_url) as connection:
        for letter in await deadletters.peek(connection, queue, limit):
            _message(letter.message_id, letter.type, letter.reason, f"original queue: {letter.original_queue}",
                     letter.dead_since, letter.body, letter)
    return 0


async def _replay(settings: Settings, queue: str, dsn: str | None, ids: Sequence | None, dry_run: bool) -> int:
    def told(message_id: str | None, to: str) -> None:
        print(f"{'would replay' if dry_run else 'replayed'} {message_id} to {to}", flush=True)
        seen.add(message_id)

    seen: set[str | None] = set()
    async with deadletters.connected(settings.amqp_url) as connection:
        if dsn is None:
            done = await deadletters.replay(connection, queue, ids, dry_run=dry_run, on_replayed=told)
        else:
            async with database(dsn) as con, deadletters.publishing(connection) as channel:
                done = await set_aside.replay(con, channel, ids, dry_run=dry_run, on_replayed=told)
    return _outcome(queue, done, {str(i) for i in ids or ()} - {str(i) for i in seen}, dry_run)


def _outcome(queue: str, done: Replayed, missing: set[str], dry_run: bool) -> int:
    for message_id, reason in done.refused:
        print(f"refused {message_id}: {reason} (left in {queue})")
    for message_id in sorted(missing - {m for m, _ in done.refused}):
        print(f"not found {message_id}")
    if done.error is not None:
        print(f"gozon dlq: replay stopped, the rest left in {queue}: {done.error!r}", file=sys.stderr)
    if not dry_run:
        print(f"replayed {done.replayed:,} from {queue}")
    return 1 if done.refused or missing or done.error is not None else 0


async def _purge(settings: Settings, queue: str, dsn: str | None, ids: Sequence | None, yes: bool) -> int:
    if not yes:
        if not sys.stdin.isatty():
            raise Refused("refusing to purge without --yes: standard input is not a terminal")
        what = f"{len(ids)} message(s)" if ids is not None else "every message"
        if input(f"purge {what} of {queue} for good? [y/N] ").strip().lower() not in {"y", "yes"}:
            print("nothing purged")
            return 1
    if dsn is not None:
        async with database(dsn) as con:
            purged = await outbox.delete_set_aside(con, ids)
    else:
        async with deadletters.connected(settings.amqp_url) as connection:
            purged = await deadletters.purge(connection, queue, ids)
    print(f"purged {purged:,} from {queue}")
    return 1 if ids is not None and purged < len(set(ids)) else 0


def _line(name: str, count: int, unit: str, oldest: datetime | None) -> str:
    if not count:
        return f"{name:<40} empty"
    age = f"oldest {_age(oldest)}" if oldest is not None else "age unknown"
    return f"{name:<40} {count:>7,} {unit}{'' if count == 1 else 's'}, {age}"


def _reasons(reasons) -> None:
    for reason, n in reasons:
        print(f"    {n:>7,}  {reason}")


def _message(message_id: str | None, message_type: str | None, reason: str, origin: str, since: datetime | None,
             body: bytes, letter: DeadLetter | None = None) -> None:
    age = f"{_age(since)} old" if since is not None else "age unknown"
    shown = f", shown {letter.deliveries} time(s) before" if letter is not None and letter.deliveries else ""
    text = body.decode(errors="backslashreplace")
    print(f"{message_id}  {message_type or '(no type)'}  {age}{shown}")
    print(f"  reason:         {reason}")
    print(f"  {origin}")
    print(f"  body:           {text[:BODY_SHOWN]}{'…' if len(text) > BODY_SHOWN else ''}")


def _age(since: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - since).total_seconds()))
    days, hours, minutes = seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02}m"
    return f"{minutes}m {seconds % 60:02}s" if minutes else f"{seconds}s"


def _message_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Refused(f"not a message id (a UUID): {text!r}") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return int(text)


def _failed(line: str) -> int:
    print(f"gozon dlq: {line}", file=sys.stderr)
    return 2
