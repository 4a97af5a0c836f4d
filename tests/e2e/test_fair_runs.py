"""Starving everyone, tried end to end: 20 monitors in a hostile namespace point at an
endpoint that accepts connections and never answers, with the most patient probe the
CRD allows. Each of their runs then lasts until its deadline. A healthy monitor in
another namespace must keep its schedule all the same.

The operator runs with its default slots (16) and the automatic per-namespace share.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import free_port, start_and_wait, watching
from tests.e2e.test_runs import condition, monitor, setup
from tests.modelserver import ModelServer

HOSTILE_MONITORS = 20
HOSTILE_TIMEOUT = 30  # seconds: each hostile run holds its slot this long
INTERVAL = 10
OBSERVE_SECONDS = 50.0


@contextlib.contextmanager
def silent_endpoint() -> Iterator[tuple[str, list[int]]]:
    """A TCP server on loopback that accepts, reads and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted[0] += 1
            held.append(conn)  # kept open, never written to

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_hostile_namespace_does_not_delay_a_healthy_monitor(
    crds: KubeCluster,
    tmp_path: Path,
    namespace: str,
    hostile_namespace: str,
    model_server: ModelServer,
) -> None:
    cluster = crds
    metrics_port = free_port()
    op = watching(
        cluster, tmp_path / "operator.log", namespace, hostile_namespace, metrics_port=metrics_port
    )
    with silent_endpoint() as (silent, accepted):
        try:
            start_and_wait(op)
            setup(cluster, hostile_namespace)
            hostile = []
            for i in range(HOSTILE_MONITORS):
                doc = monitor(
                    f"stall-{i:02d}",
                    silent,
                    "iris",
                    schedule={"interval": f"{INTERVAL}s", "runTimeout": f"{HOSTILE_TIMEOUT}s"},
                )
                doc["spec"]["data"]["probe"].update({"timeoutSeconds": 300, "retries": 10})
                hostile.append(doc)
            cluster.apply(hostile, "-n", hostile_namespace)
            # every hostile monitor's first run is due within the interval: let them take
            # every slot they can before the healthy monitor exists
            wait_for(lambda: accepted[0] >= 10, timeout=30, what="hostile runs started")
            time.sleep(INTERVAL / 2)

            setup(cluster, namespace)
            healthy = monitor("healthy", model_server.url, "iris")
            applied = dt.datetime.now(dt.UTC)
            cluster.apply(healthy, "-n", namespace)
            runs: list[dt.datetime] = []
            deadline = time.monotonic() + OBSERVE_SECONDS
            while time.monotonic() < deadline:
                status = cluster.get("mm", "healthy", "-n", namespace).get("status") or {}
                last = (status.get("lastRun") or {}).get("time")
                if last and (not runs or _time(last) != runs[-1]):
                    runs.append(_time(last))
                time.sleep(0.5)
            final = cluster.get("mm", "healthy", "-n", namespace)["status"]
            stalled = [
                cluster.get("mm", f"stall-{i:02d}", "-n", hostile_namespace).get("status") or {}
                for i in range(HOSTILE_MONITORS)
            ]
            metrics = (
                urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
                .read()
                .decode()
            )
        finally:
            op.stop()

    # The healthy monitor ran on schedule the whole time: its first run within the
    # start spread (at most the interval), then every interval (+ up to 10 % jitter and
    # the run itself, about a second); never a hostile run's 30 s deadline later.
    assert runs, f"no run of the healthy monitor: {final}"
    first = (runs[0] - applied).total_seconds()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(runs)]
    print(f"healthy runs: first {first:.1f}s after apply, gaps {[round(g, 1) for g in gaps]}")
    assert first < INTERVAL + 5, f"first run {first:.1f}s after apply; runs {runs}"
    assert len(runs) >= 4, f"{len(runs)} runs in {OBSERVE_SECONDS:.0f}s: {gaps}"
    assert max(gaps) < INTERVAL + 5, gaps
    assert final["phase"] == "Healthy", final
    # ... while the hostile runs were really held up: stopped at their deadline
    timed_out = [s for s in stalled if condition(s, "Degraded").get("reason") == "RunTimedOut"]
    print(f"hostile monitors stopped at their deadline: {len(timed_out)}/{HOSTILE_MONITORS}")
    assert timed_out, [condition(s, "Degraded") for s in stalled]
    message = condition(timed_out[0], "Degraded")["message"]
    assert f"spec.schedule.runTimeout ({HOSTILE_TIMEOUT}s)" in message, message
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("modelmonitor_run_timeouts_total{")
        and f'namespace="{hostile_namespace}"' in line
    ]
    assert counted, "modelmonitor_run_timeouts_total has no hostile series"
