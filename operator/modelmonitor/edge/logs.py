"""Logging set-up: human-readable text or one JSON object per line."""

from __future__ import annotations

import logging

import kopf


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
