"""structlog configuration, done once by the entry points (never by the cores).

Every node binds ``node`` and each message log adds ``interface`` (Gm, Mw, ISC,
Peu, Pw, Pen, Pex, Ph, Pi, Px, Cx, Sh, Pc, Pg, Pk, Pl), ``call_id``, ``method``
and ``direction`` so one flow can be followed across nodes.  Hot paths log at
debug level: the filtering bound logger drops those calls before formatting.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str = "info", *, json: bool | None = None, stream: Any = None) -> None:
    """Configure structlog for a process: console renderer on a TTY, JSON otherwise."""
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def get_logger(**bound: Any) -> Any:
    """A logger with the given context bound (e.g. ``node="pcscf"``)."""
    return structlog.get_logger().bind(**bound)
