"""structlog set-up: JSON lines for machines, a console renderer on a terminal.

Privacy rule: log calls name ids, codes, outcomes and timings, never facts (ID numbers,
names, addresses). Tracebacks are rendered without local variables for the same reason.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog


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
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *([add_extra] if fixed else []),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # plain traceback: no locals, so no facts
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # One write per line: several worker processes share stderr, and print() writes the
        # line and its newline separately, so their lines could interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache,
    )
