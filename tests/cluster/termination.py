"""A container's termination message, as a kubelet reads it when the container exits.

Each container start gets a fresh, empty file of its own, bound at the container's
``terminationMessagePath`` (default ``/dev/termination-log``) in its mount namespace
(tests/cluster/pod_dns.py); whatever the process wrote there becomes
``state.terminated.message``, at most 4096 bytes. With ``terminationMessagePolicy:
FallbackToLogsOnError`` a container that failed and wrote nothing gets the tail of its
log instead: the last 80 lines, at most 2048 bytes, as the kubelet does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_PATH = "/dev/termination-log"
MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


def message_path(spec: Mapping[str, Any]) -> str:
    """Where in the container the message is written (``terminationMessagePath``)."""
    return str(spec.get("terminationMessagePath") or DEFAULT_PATH)


def log_tail(output: bytes, lines: int = FALLBACK_LINES, limit: int = FALLBACK_BYTES) -> bytes:
    """The last ``lines`` lines of ``output``, cut to its last ``limit`` bytes."""
    kept = b"\n".join(output.rstrip(b"\n").split(b"\n")[-lines:])
    return kept[-limit:]


def read_message(
    spec: Mapping[str, Any], message_file: Path | None, exit_code: int, output: bytes | None
) -> str:
    """The terminated state's ``message`` ("" for none) of a container that exited."""
    written = b""
    if message_file is not None:
        try:
            with open(message_file, "rb") as f:
                written = f.read(MAX_MESSAGE_BYTES)
        except OSError:
            written = b""
    policy = spec.get("terminationMessagePolicy") or "File"
    if not written and exit_code != 0 and policy == "FallbackToLogsOnError" and output:
        written = log_tail(output)
    return written[:MAX_MESSAGE_BYTES].decode("utf-8", "replace")
