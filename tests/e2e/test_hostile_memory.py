"""Crashing the shared operator with memory, tried end to end.

A hostile namespace applies the monitors that each used to take the operator past the
chart's memory limit (1 GiB): a Prometheus that answers 200 MB, a model endpoint that
answers 64 MB to each of 64 concurrent requests, a parquet reference of a few hundred
KiB that decodes to 40 million rows, and a gzip reference of about 1 MB that inflates
to 512 MiB. A payload window of a million samples is refused by the API server. The
operator must stay alive with its peak resident memory under the chart's limit, and a
well-behaved monitor in another namespace must keep its schedule.

The hostile endpoints are a real HTTP server on loopback, started by the test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.cluster.kube import KubeCluster
from tests.e2e.operator_fixtures import start_and_wait, watching
from tests.e2e.test_runs import monitor, setup
from tests.modelserver import ModelServer

CHART_MEMORY_LIMIT = 1024 * 1024 * 1024  # charts/modelmonitor/values.yaml resources.limits
INTERVAL = 10
OBSERVE_SECONDS = 60.0
MiB = 1024 * 1024


def parquet_bomb() -> bytes:
    """40 million rows of one int8 column: a few hundred KiB on disk."""
    table = pa.table({"sepal_length": pa.array(np.zeros(40_000_000, dtype=np.int8))})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def gzip_bomb(inflated: int = 512 * MiB) -> bytes:
    """A CSV with the iris header whose body inflates to ``inflated`` bytes: one small
    gzip member of 1 MiB of rows, repeated (gzip readers join the members)."""
    header = gzip.compress(b"sepal_length,sepal_width,petal_length,petal_width,prediction\n")
    rows = gzip.compress(b"1,2,3,4,0\n" * (MiB // 10), compresslevel=9)
    return header + rows * (inflated // (MiB // 10 * 10))


class HostileHandler(BaseHTTPRequestHandler):
    """Answers everything with far more than anyone should read."""

    files: ClassVar[dict[str, bytes]] = {}
    sent: ClassVar[dict[str, int]] = {}

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _stream(self, total: int, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()  # no Content-Length: the reader cannot refuse it up front
        chunk = b'{"data":[' + b"1," * (MiB // 2)
        written = 0
        try:
            while written < total:
                self.wfile.write(chunk)
                written += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader stopped reading: what it should do
        # the most one request of this path got out before the reader hung up
        HostileHandler.sent[self.path] = max(HostileHandler.sent.get(self.path, 0), written)

    def _answer(self) -> None:
        if self.path in self.files:
            body = self.files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/api/v1/"):
            self._stream(200 * MiB, "application/json")
        else:  # the inference endpoint
            self._stream(64 * MiB, "application/json")

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer()


@contextlib.contextmanager
def hostile_server() -> Iterator[str]:
    HostileHandler.files = {"/bomb.parquet": parquet_bomb(), "/bomb.csv.gz": gzip_bomb()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def hostile_monitors(hostile: str, model_url: str) -> list[dict[str, Any]]:
    quiet = {"interval": f"{INTERVAL}s", "runTimeout": "30s"}
    flood_prometheus = monitor(
        "flood-prometheus",
        model_url,
        "iris",
        schedule=quiet,
        drift={"enabled": False},
        prometheus={"url": hostile, "timeoutSeconds": 30},
        slos=[
            {
                "name": "availability",
                "source": "prometheus",
                "objective": 99,
                "window": "1h",
                "template": {"name": "mlserver", "model": "iris"},
                "errorRatio": {},
            }
        ],
    )
    flood_probe = monitor("flood-probe", hostile, "iris", schedule=quiet)
    flood_probe["spec"]["data"]["probe"].update(
        {"samples": 640, "batchSize": 10, "concurrency": 64, "timeoutSeconds": 30, "retries": 0}
    )
    bombs = []
    for name, path in (("bomb-parquet", "/bomb.parquet"), ("bomb-gzip", "/bomb.csv.gz")):
        bombs.append(
            monitor(name, model_url, "iris", schedule=quiet, reference={"url": hostile + path})
        )
    return [flood_prometheus, flood_probe, *bombs]


def test_hostile_monitors_do_not_crash_the_operator_nor_delay_others(
    crds: KubeCluster,
    tmp_path: Path,
    namespace: str,
    hostile_namespace: str,
    model_server: ModelServer,
) -> None:
    cluster = crds
    op = watching(cluster, tmp_path / "operator.log", namespace, hostile_namespace)
    with hostile_server() as hostile:
        try:
            start_and_wait(op)
            assert op.proc is not None
            baseline = peak_rss(op.proc.pid)

            # A payload window of a million samples does not even reach the operator.
            setup(cluster, hostile_namespace)
            huge_window = monitor(
                "huge-window",
                model_server.url,
                "iris",
                data={"payloadLog": {"maxSamples": 1_000_000}},
            )
            refused = cluster.kubectl(
                "apply",
                "-n",
                hostile_namespace,
                "-f",
                "-",
                input=json.dumps(huge_window),
                check=False,
            )
            assert refused.returncode != 0, refused.stdout
            assert "maxSamples" in refused.stderr, refused.stderr

            cluster.apply(hostile_monitors(hostile, model_server.url), "-n", hostile_namespace)
            setup(cluster, namespace)
            healthy = monitor("healthy", model_server.url, "iris")
            applied = dt.datetime.now(dt.UTC)
            cluster.apply(healthy, "-n", namespace)

            runs: list[dt.datetime] = []
            deadline = time.monotonic() + OBSERVE_SECONDS
            while time.monotonic() < deadline:
                assert op.alive(), op.logs()[-3000:]
                status = cluster.get("mm", "healthy", "-n", namespace).get("status") or {}
                last = (status.get("lastRun") or {}).get("time")
                if last and (not runs or _time(last) != runs[-1]):
                    runs.append(_time(last))
                time.sleep(0.5)
            final = cluster.get("mm", "healthy", "-n", namespace)["status"]
            hostile_status = {
                name: cluster.get("mm", name, "-n", hostile_namespace).get("status") or {}
                for name in ("flood-prometheus", "flood-probe", "bomb-parquet", "bomb-gzip")
            }
            peak = peak_rss(op.proc.pid)
            alive = op.alive()
        finally:
            op.stop()

    print(
        f"operator peak RSS {peak / MiB:.0f} MiB (at start {baseline / MiB:.0f} MiB); "
        f"bytes the hostile server got out: {HostileHandler.sent}"
    )
    assert alive, op.logs()[-3000:]
    assert peak < CHART_MEMORY_LIMIT, f"peak RSS {peak / MiB:.0f} MiB"
    # The healthy monitor kept its schedule.
    assert runs, f"no run of the healthy monitor: {final}"
    first = (runs[0] - applied).total_seconds()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(runs)]
    print(f"healthy runs: first {first:.1f}s after apply, gaps {[round(g, 1) for g in gaps]}")
    assert first < INTERVAL + 5, f"first run {first:.1f}s after apply; runs {runs}"
    assert max(gaps, default=0) < INTERVAL + 5, gaps
    assert final["phase"] == "Healthy", final
    # Each hostile monitor was told why, and none of them acted.
    for name, status in hostile_status.items():
        assert status.get("phase") != "Healthy", (name, status)
        assert not status.get("incident", {}).get("acted"), (name, status)
    for name in ("bomb-parquet", "bomb-gzip"):
        messages = " ".join(c.get("message", "") for c in hostile_status[name]["conditions"])
        assert "Reference" in " ".join(
            c.get("reason", "") for c in hostile_status[name]["conditions"]
        ), (name, hostile_status[name])
        assert messages, name
    # No hostile body was read whole: every stream was cut near its cap (what the
    # socket buffers hold on top of it is the kernel's).
    for path, written in HostileHandler.sent.items():
        assert written < 64 * MiB or (path.startswith("/api/v1/") and written < 100 * MiB), (
            path,
            written,
        )
