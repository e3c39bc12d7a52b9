"""Logging: one JSON object per line (or coloured lines on a terminal) for our own
events and for those of Hypercorn, aio-pika and asyncpg alike; and, if asked, every
line as JSON in a file as well, whatever the terminal shows (for `gozon trace`).

Ids that are known (trace_id, order_id, user_id, message_id) are bound with
`structlog.contextvars` by the code that learns them and appear on every line after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import msgspec
import structlog

_json = msgspec.json.Encoder()


def _render_json(obj: object, **_: object) -> str:
    # structlog passes default= to the serializer; msgspec takes no such argument.
    return _json.encode(obj).decode()


def _not_cancellation(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def _json_tail() -> list:
    # Tracebacks as data, without locals (they would carry request bodies and secrets).
    return [structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
        structlog.processors.JSONRenderer(serializer=_render_json)]


class _JsonFile:
    """Appends each record as one JSON line to a file that several processes share: one
    write per line on an O_APPEND descriptor, so their lines never interleave mid-line."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._tail = _json_tail()

    def write(self, line: str) -> None:
        os.write(self._fd, (line + "\n").encode())

    def __call__(self, logger: object, name: str, event: dict) -> dict:
        """A structlog processor: the event goes on unchanged to the terminal's renderer."""
        copy = dict(event)
        for processor in self._tail:
            copy = processor(logger, name, copy)
        self.write(copy)
        return event


class _FileHandler(logging.Handler):
    def __init__(self, file: _JsonFile, formatter: logging.Formatter) -> None:
        super().__init__()
        self._file = file
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self._file.write(self.format(record))


def configure(service: str, *, fmt: str = "auto", level: str = "info", file: str = "") -> None:
    """Send structlog's and the stdlib's records through one renderer on stderr, and
    each also as JSON to `file` if one is named."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"

    def add_service(_logger: object, _name: str, event: dict) -> dict:
        event.setdefault("service", service)
        return event

    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_service,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    if fmt == "json":
        rendering = _json_tail()
    else:
        # Plain tracebacks: rich's would print local variables (request bodies, secrets).
        rendering = [structlog.dev.ConsoleRenderer(timestamp_key="ts", exception_formatter=structlog.dev.plain_traceback)]

    def formatter(rendering: list) -> logging.Formatter:
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(rendering))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Nothing of this when no file is named: the per-line path stays as it was.
    copies = []
    if file:
        json_file = _JsonFile(file)
        root.handlers.append(_FileHandler(json_file, formatter(_json_tail())))
        copies = [json_file]
    root.setLevel(level.upper())
    # Chatty at INFO about every channel and connection; warnings still come through.
    # (The proxy's aiohttp client logs nothing per request; the gateway logs its own line.)
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    # It logs every failed connect at ERROR; our Broker says the same once, as a warning.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    # CPython 3.11's asyncio streams log a cancelled connection task as an error when a
    # server closes at shutdown (fixed in 3.12); it is not one.
    logging.getLogger("asyncio").addFilter(_not_cancellation)

    # Our own events skip the stdlib machinery (a LogRecord, a handler and a formatter
    # per line): rendered straight to stderr, the same renderer as the stdlib's records.
    structlog.configure(
        processors=[*shared, *copies, *rendering],
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(root.level),
        cache_logger_on_first_use=True,
    )
