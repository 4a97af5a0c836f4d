"""Logging set-up: human-readable text or one JSON object per line."""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

import kopf

UNCAUGHT_LOGGER = "modelmonitor.uncaught"


def configure_logging(log_format: str, level: str) -> None:
    kopf.configure(
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object" if log_format == "json" else None,
        verbose=level == "DEBUG",
    )
    logging.getLogger().setLevel(level)
    # The HTTP client's chatter is noise at INFO.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if log_format == "json":
        route_uncaught_to_logging()


def route_uncaught_to_logging() -> None:
    """Send what Python would print as plain text through logging instead.

    With LOG_FORMAT=json a log shipper expects one JSON object a line; Python's own
    printers (an exception escaping the main thread or another thread, an exception
    ignored in a finaliser at shutdown, a warning) write multi-line plain text to stderr
    and break that. Routed here, they keep their traceback, inside the JSON record.
    """
    log = logging.getLogger(UNCAUGHT_LOGGER)

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        log.critical("uncaught exception: %s", exc_type.__name__, exc_info=(exc_type, exc, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
        log.error("uncaught exception in thread %s", name, exc_info=exc_info)

    def unraisablehook(args: sys.UnraisableHookArgs) -> None:
        where = args.err_msg or "Exception ignored in"
        exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
        log.warning("%s: %r", where, args.object, exc_info=exc_info)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    sys.unraisablehook = unraisablehook
    logging.captureWarnings(True)
