"""Timing and memory helpers shared by every benchmark runner (stdlib only).

Runners for other tools execute in their own virtual environments and import only this
module from bench/, so it must not import numpy or modelmonitor.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class Phases:
    """Wall-clock and CPU time per named phase, in order.

    CPU time is the process's (all threads): on a machine shared with other jobs it is
    the steadier measure of the work a tool does, as it leaves out time spent waiting
    for a core.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], T]) -> T:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        self.cpu_seconds[name] = time.process_time() - c0
        self.seconds[name] = time.perf_counter() - t0
        return out

    def total(self, *, exclude: tuple[str, ...] = ("import",)) -> dict[str, float]:
        return {
            "total_seconds": sum(v for k, v in self.seconds.items() if k not in exclude),
            "total_cpu_seconds": sum(v for k, v in self.cpu_seconds.items() if k not in exclude),
        }


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout: what run.sh collects."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
