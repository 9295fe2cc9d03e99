"""One JSON log line from an event, in one structlog processor.

It writes what this chain of structlog's own processors wrote, key for key:
merge_contextvars, add_log_level, the fixed extra keys, TimeStamper(fmt="iso", utc=True),
format_exc_info, and a JSONRenderer of orjson (json.dumps for what orjson refuses: an
integer beyond 64 bits). Five processor calls, a context copy walked
var by var and a datetime per line were about a tenth of Decide's own Python; here the
contextvars are read from structlog's table of them, the timestamp's date and time are
formatted once a second, and the line comes out as UTF-8 bytes with its newline.
tests/test_logline.py renders generated events both ways and requires the same lines.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import orjson
import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX_LEN

# Dates and dataclasses by repr, as structlog's renderer writes them, not orjson's own forms.
_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def fallback(obj: Any) -> Any:
    """What structlog's own JSON renderer writes for a value JSON has no form for."""
    structlogged = getattr(obj, "__structlog__", None)
    return structlogged() if structlogged is not None else repr(obj)


def json_line(
    extra: Mapping[str, Any] | None = None, clock: Callable[[], int] = time.time_ns
) -> Callable[[Any, str, MutableMapping[str, Any]], bytes | str]:
    """The processor: an event to its line, newline included. Bytes from orjson (a few µs
    less per decision line than json.dumps); a line orjson refuses (an integer beyond 64 bits)
    is written by json.dumps instead, as a str for the writer to encode as the file would.
    `clock`: nanoseconds since the epoch, as time.time_ns (tests fix it)."""
    fixed = tuple((extra or {}).items())
    stamp = IsoStamps(clock)
    context = _ContextVars()
    format_exc_info = structlog.processors.format_exc_info
    dumps, options = orjson.dumps, _OPTIONS | orjson.OPT_APPEND_NEWLINE

    def render(logger: Any, method_name: str, event: MutableMapping[str, Any]) -> bytes | str:
        context.merge(logger, method_name, event)
        event["level"] = _LEVEL_NAMES.get(method_name, method_name)  # as add_log_level
        for key, value in fixed:
            event[key] = value
        event["timestamp"] = stamp()
        if "exc_info" in event:
            format_exc_info(logger, method_name, event)
        try:
            return dumps(event, default=fallback, option=options)
        except TypeError:
            return json.dumps(event, default=fallback, ensure_ascii=False) + "\n"

    return render


# add_log_level's names: "warn" is the standard library's old alias, exception() an error.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


class _ContextVars:
    """merge_contextvars: each bound contextvar's key and value, unless the event has the key,
    read from structlog's table of the vars it made (name -> var) rather than by walking a
    copy of the whole context. A private name, so a structlog without it gets
    merge_contextvars itself."""

    def __init__(self) -> None:
        self._table: dict[str, Any] | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
        self._pairs: tuple[tuple[str, Any], ...] = ()

    def merge(self, logger: Any, method_name: str, event: MutableMapping[str, Any]) -> None:
        table = self._table
        if table is None:
            structlog.contextvars.merge_contextvars(logger, method_name, event)
            return
        pairs = self._pairs
        if len(pairs) != len(table):  # a key bound for the first time (vars are never removed)
            # tuple(): another thread's first bind of a key may grow the table meanwhile.
            pairs = self._pairs = tuple(
                (name[STRUCTLOG_KEY_PREFIX_LEN:], var) for name, var in tuple(table.items())
            )
        for key, var in pairs:
            value = var.get()
            if value is not Ellipsis:
                event.setdefault(key, value)


class IsoStamps:
    """Now as TimeStamper(fmt="iso", utc=True) writes it ("2026-12-02T12:31:35.123456Z", the
    fraction left out at exactly .000000, as datetime.isoformat does), with the date and time
    formatted once per second."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._second: tuple[int, str] = (0, _seconds_text(0))

    def __call__(self) -> str:
        # Floor to the microsecond, as datetime.now does with the same system clock.
        seconds, micros = divmod(self._clock() // 1000, 1_000_000)
        second = self._second  # one read: another thread may replace it meanwhile
        if second[0] != seconds:
            second = self._second = (seconds, _seconds_text(seconds))
        return f"{second[1]}.{micros:06d}Z" if micros else f"{second[1]}Z"


def _seconds_text(seconds: int) -> str:
    """The second as datetime.isoformat writes it, without fraction or zone."""
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    return moment.isoformat()


def logger_class(min_level: int, render: Any) -> type[Any]:
    """structlog's filtering logger for `min_level`, each logging method going straight to
    `render` while that is the whole processor chain: the four calls structlog makes per line
    on the way (the method, _proxy_to_logger, _process_event, the logger's method looked up)
    become one. Any other chain (structlog.testing.capture_logs swaps in its own), or
    positional arguments to interpolate, take structlog's own path."""
    base: Any = structlog.make_filtering_bound_logger(min_level)
    methods = {
        name: _straight(name, getattr(base, name), render)
        for name, level in _LEVELS.items()
        if level >= min_level
    }
    for alias, name in (("msg", "info"), ("warn", "warning"), ("fatal", "critical")):
        if name in methods:
            methods[alias] = methods[name]
    return type(f"Json{base.__name__}", (base,), methods)


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _straight(name: str, slow: Any, render: Any) -> Any:
    def method(self: Any, event: Any, *args: Any, **kw: Any) -> Any:
        processors = self._processors
        if args or len(processors) != 1 or processors[0] is not render:
            return slow(self, event, *args, **kw)
        # As structlog's _process_event: the bound context, the keywords, then the event.
        event_dict = self._context.copy()
        event_dict.update(kw)
        if event is not None:
            event_dict["event"] = event
        return getattr(self._logger, name)(render(self._logger, name, event_dict))

    method.__name__ = name
    return method
