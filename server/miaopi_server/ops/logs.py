"""structlog set-up: JSON lines for machines, a console renderer on a terminal.

Privacy rule: log calls name ids, codes, outcomes and timings, never facts (ID numbers,
names, addresses). Tracebacks are rendered without local variables for the same reason.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from miaopi_server.ops.logline import json_line, logger_class
from miaopi_server.ops.logsink import LineWriter


def configure(
    fmt: str = "auto", level: str = "info", cache: bool = True, extra: dict[str, Any] | None = None
) -> None:
    """fmt: "json", "console", or "auto" (console on a TTY, JSON otherwise).

    cache=False keeps loggers re-reading the configuration (tests capture logs that way);
    `extra` is added to every event (e.g. the worker number)."""
    fixed = dict(extra or {})

    def add_extra(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event.update(fixed)
        return event

    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    # Libraries that log through the standard library (psycopg's pool, when the audit
    # database is lost) come out as lines like ours: one JSON object per line on stderr.
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryLogs)]:
        root.removeHandler(old)
    root.addHandler(_LibraryLogs(logging.WARNING))
    min_level = logging.getLevelNamesMapping()[level.upper()]
    global _writer
    if _writer is not None:  # lines still pending go out before the new set-up's
        with contextlib.suppress(OSError, ValueError):  # unless its file is gone (closed)
            _writer.flush()
    if use_console:
        _writer = None
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                *([add_extra] if fixed else []),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,  # plain traceback: no locals, so no facts
                structlog.dev.ConsoleRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(min_level),
            # One write per line: several worker processes share stderr, and print() writes
            # the line and its newline separately, so their lines could interleave.
            logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=cache,
        )
        return
    # JSON: the keys the console's chain adds, in one processor (ops/logline.py; the
    # traceback there is plain too), to one writer that every logger shares, so lines keep
    # their order (ops/logsink.py: whole lines, several per write, never split across
    # processes).
    writer = _writer = LineWriter(sys.stderr)
    render = json_line(fixed)
    structlog.configure(
        processors=[render],
        wrapper_class=logger_class(min_level, render),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=cache,
    )


_writer: LineWriter | None = None


class _LibraryLogs(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        structlog.get_logger("miaopi.library").warning(
            "library.log", logger=record.name, message=_library_message(record)
        )


def _library_message(record: logging.LogRecord) -> str:
    """The record's text; psycopg's with each exception named by its type only: libpq's
    messages (the pool's "error connecting in ...: <error>") may quote the DSN, password too."""
    if not record.name.startswith("psycopg") or not isinstance(record.args, tuple):
        return record.getMessage()
    args = tuple(
        f"{type(a).__name__} (details withheld)" if isinstance(a, BaseException) else a
        for a in record.args
    )
    try:
        return str(record.msg) % args if args else str(record.msg)
    except (TypeError, ValueError):
        return str(record.msg)


class LogSampler:
    """Bounds the lines a flood of alike events can write: per key (e.g. the kind of refusal),
    at most `lines` lines in each `interval` seconds; the rest are counted, and the next line
    logged for that key says how many were left out (`suppressed`). Isolated events are all
    logged. The keys remembered are bounded too (the one seen longest ago is forgotten)."""

    def __init__(
        self,
        lines: int = 20,
        interval: float = 10.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lines, self._interval, self._max_keys, self._clock = lines, interval, max_keys, clock
        self._state: OrderedDict[str, list[float]] = (
            OrderedDict()
        )  # [window start, logged, left out]
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None: leave this event's line out. Otherwise log it, with the returned number of
        lines left out for this key since the last one logged."""
        now = self._clock()
        with self._lock:
            state = self._state.get(key)
            if state is None:
                state = self._state[key] = [now, 0, 0]
                if len(self._state) > self._max_keys:
                    self._state.popitem(last=False)
            else:
                self._state.move_to_end(key)
            if now - state[0] >= self._interval:
                state[0], state[1] = now, 0
            if state[1] >= self._lines:
                state[2] += 1
                return None
            state[1] += 1
            suppressed, state[2] = int(state[2]), 0
            return suppressed
