"""The partition step on a Dask cluster: rows/s, peak memory per worker, verdict agreement.

Starts a real cluster of this virtualenv's ``distributed``: ``dask scheduler`` and
``--workers`` ``dask worker`` processes (one thread each, no nanny, so each worker's
process id is known and its peak RSS is read from /proc/<pid>/status VmHWM when the
run is over). Then runs ``modelmonitor check --engine dask --scheduler tcp://...`` as a
user would, over the window ``bench/partitions_generate.py`` wrote (the workers read the
files; only profiles travel), and checks the engine's answer against the exact in-memory
one on a subset (the first partitions holding ``--subset-rows`` rows, as
``bench/partitions.py`` does for single-pod streaming). Prints a summary and writes the
raw record to ``bench/results/partitions-dask-<time>.json``.

    python bench/partitions_dask.py --data bench/data/partitions100m --workers 2 \\
        [--subset-rows 10000000] [--skip-full]

A fresh cluster for each measured run, so each worker's VmHWM is that run's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from partitions import check, compare, machine, subset  # bench/ is on sys.path as a script

BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, workers: int, log_dir: Path) -> None:
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        port = self.address.rsplit(":", 1)[1]
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self.scheduler = self._start(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"
        )
        self.workers = [
            self._start(
                f"worker-{i}",
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--memory-limit",
                "0",
            )
            for i in range(workers)
        ]
        deadline = time.monotonic() + 120
        while self._log("scheduler").count("Register worker") < workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not register: {self._log('scheduler')[-2000:]}")
            time.sleep(0.5)

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        return subprocess.Popen(
            [str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def worker_stats(self) -> list[dict[str, float]]:
        """Each worker's peak RSS (VmHWM) and CPU seconds so far."""
        out = []
        for w in self.workers:
            status = Path(f"/proc/{w.pid}/status").read_text()
            hwm = next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]
            stat = Path(f"/proc/{w.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(stat[11]) + int(stat[12])) / TICKS  # utime, stime
            out.append({"peak_rss_mib": int(hwm) / 1024, "cpu_s": cpu})
        return out

    def stop(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def on_cluster(
    workers: int, log_dir: Path, ref: Path, current: Path, *extra: str
) -> dict[str, Any]:
    cluster = Cluster(workers, log_dir)
    try:
        idle = cluster.worker_stats()
        run = check(ref, current, "--engine", "dask", "--scheduler", cluster.address, *extra)
        stats = cluster.worker_stats()
    finally:
        cluster.stop()
    run["workers"] = [
        {"peak_rss_mib": s["peak_rss_mib"], "cpu_s": s["cpu_s"] - i["cpu_s"]}
        for s, i in zip(stats, idle, strict=True)
    ]
    run["worker_cpu_s"] = sum(w["cpu_s"] for w in run["workers"])
    run["driver_cpu_s"] = run.pop("cpu_s")
    run["driver_peak_rss_mib"] = run.pop("peak_rss_mib")
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="bench/data/partitions")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--subset-rows", type=int, default=10_000_000)
    ap.add_argument("--skip-full", action="store_true", help="only the subset comparison")
    ap.add_argument("--methods", default="auto,ks", help="methods compared on the subset")
    args = ap.parse_args()
    data = Path(args.data)
    ref = data / "reference.parquet"
    logs = data / "dask-logs"
    record: dict[str, Any] = {
        "machine": machine(),
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "workers": args.workers,
    }
    if not args.skip_full:
        full = on_cluster(args.workers, logs / "full", ref, data / "current")
        full["partitions"] = full["report"]["current"]["partitions"]
        full["rows_per_s"] = full["rows"] / full["wall_s"]
        full["rows_per_worker_cpu_s"] = full["rows"] / full["worker_cpu_s"]
        full["dataset"] = full["report"]["dataset"]
        del full["report"]
        record["full"] = full
        print(
            f"full window on {args.workers} workers: {full['rows']:,} rows in "
            f"{full['partitions']} partitions: {full['wall_s']:.1f} s wall, "
            f"{full['rows_per_s']:,.0f} rows/s, worker CPU {full['worker_cpu_s']:.1f} s "
            f"({full['rows_per_worker_cpu_s']:,.0f} rows per worker CPU s), peak RSS per "
            f"worker {[round(w['peak_rss_mib']) for w in full['workers']]} MiB, driver "
            f"{full['driver_peak_rss_mib']:.0f} MiB / {full['driver_cpu_s']:.1f} s CPU",
            flush=True,
        )
    folder, whole, rows = subset(data, args.subset_rows)
    record["subset_rows"] = rows
    for label in args.methods.split(","):
        extra = () if label == "auto" else ("--method", label)
        engine = on_cluster(args.workers, logs / f"subset-{label}", ref, folder, *extra)
        exact = check(ref, whole, *extra)
        cmp = compare(engine["report"], exact["report"])
        cmp["engine_wall_s"], cmp["exact_wall_s"] = engine["wall_s"], exact["wall_s"]
        cmp["engine_workers_peak_rss_mib"] = [w["peak_rss_mib"] for w in engine["workers"]]
        cmp["exact_peak_rss_mib"] = exact["peak_rss_mib"]
        record[f"agreement_{label}"] = cmp
        print(
            f"{label} on {rows:,} rows: {cmp['features_agreeing']}/{cmp['features']} feature "
            f"verdicts agree, dataset verdict agrees: {cmp['dataset_agrees']}, max |statistic "
            f"error| {cmp['max_statistic_error']:.2e} ({cmp['worst']['feature']}), max "
            f"|p-value error| {cmp['max_pvalue_error']:.2e}; engine {engine['wall_s']:.1f} s, "
            f"in memory {exact['wall_s']:.1f} s / {exact['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    out = Path("bench/results") / f"partitions-dask-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
