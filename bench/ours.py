"""modelmonitor on the benchmark data (runs in the project's .venv). One JSON line per mode.

Modes:

* ``e2e --setup auto``: what ``modelmonitor check --reference data --current data``
  does: read both Parquet files, profile the reference, per-feature drift with the
  ``auto`` methods (normed Wasserstein / Jensen-Shannon at these sizes, the same
  families as Evidently's preset), data quality, JSON report;
* ``e2e --setup tests``: the same with the tests Alibi Detect's TabularDrift runs:
  Kolmogorov-Smirnov on the exact reference sample for numerical features, chi-squared
  for categorical ones, Bonferroni;
* ``profile-run``: with a precomputed profile and the current window in memory, time
  one run (drift + data quality) against numpy sorting the window column by column, and
  its peak traced memory against the window's raw array size;
* ``scaling``: run time with a precomputed profile from 10^3 to 10^7 current rows;
* ``baseline``: build the reference profile from the Parquet file in chunks;
* ``cli``: the user-facing ``modelmonitor check`` with a saved profile, as a process
  (interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _measure import Phases, current_rss_mib, emit, peak_rss_mib

T_IMPORT = time.perf_counter()
import numpy as np  # noqa: E402

from modelmonitor.adapters.files import ReadLimits, iter_datasets, read_dataset  # noqa: E402

#: Benchmark data is our own and sized on purpose: the input caps do not apply.
UNBOUNDED = ReadLimits.unbounded()
from modelmonitor.core.dataset import CategoricalColumn, Dataset  # noqa: E402
from modelmonitor.core.stats.drift import analyze  # noqa: E402
from modelmonitor.core.stats.profile import ReferenceProfile  # noqa: E402
from modelmonitor.core.stats.quality import data_quality  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T_IMPORT


def _run(reference: ReferenceProfile | Dataset, current: Dataset, **kw: Any) -> dict[str, Any]:
    report = analyze(reference, current, **kw)
    quality = data_quality(current, reference)
    out = report.to_dict()
    out["data_quality"] = quality.to_dict()
    json.dumps(out)
    return out


def _drifted(out: dict[str, Any]) -> list[str]:
    return sorted(f["name"] for f in out["features"] if f["drifted"])


def e2e(args: argparse.Namespace) -> None:
    phases = Phases()
    rss0 = current_rss_mib()
    ref = phases.run("load_reference", lambda: read_dataset(args.reference, limits=UNBOUNDED))
    cur = phases.run("load_current", lambda: read_dataset(args.current, limits=UNBOUNDED))
    feats = ref.inferred_features()
    if args.setup == "auto":
        profile = phases.run("profile", lambda: ReferenceProfile.from_dataset(ref, feats))
        out = phases.run("compute", lambda: _run(profile, cur))
        setup = "analyze(method=auto) + data_quality, profile built in the run"
    else:
        methods = {f.name: "ks" if f.type == "numerical" else "chi2" for f in feats}
        profile = phases.run(
            "profile", lambda: ReferenceProfile.from_dataset(ref, feats, exact_limit=None)
        )
        out = phases.run("compute", lambda: _run(profile, cur, method="auto", methods=methods))
        setup = "ks (exact reference) + chi2, Bonferroni, + data_quality"
    emit(
        {
            "tool": "modelmonitor",
            "mode": f"e2e-{args.setup}",
            "setup": setup,
            "seconds": {"import": IMPORT_SECONDS, **phases.seconds},
            "cpu_seconds": phases.cpu_seconds,
            **phases.total(),
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_import_mib": rss0,
            "drifted": _drifted(out),
            "methods": sorted({f["method"] for f in out["features"]}),
        }
    )


def _window_arrays(ds: Dataset) -> list[np.ndarray]:
    return [c.codes if isinstance(c, CategoricalColumn) else c for c in ds.columns.values()]


def _best(fn: Any, repeat: int) -> tuple[float, float]:
    """(min, median) wall-clock seconds of ``repeat`` calls."""
    wall, _ = _best_wall_cpu(fn, repeat)
    return min(wall), statistics.median(wall)


def _best_wall_cpu(fn: Any, repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each call. On a shared machine the CPU time of this
    (single-threaded) process is the steadier measure: it leaves out time spent waiting
    for a core."""
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return wall, cpu


def profile_run(args: argparse.Namespace) -> None:
    profile = ReferenceProfile.load(args.profile)
    cur = read_dataset(args.current, limits=UNBOUNDED)
    arrays = _window_arrays(cur)
    raw_bytes = sum(a.nbytes for a in arrays)
    _run(profile, cur)  # warm the profile's caches (bin edges, quantile grid): done once

    def sort_all() -> None:
        for a in arrays:
            np.sort(a)

    run_wall: list[float] = []
    run_cpu: list[float] = []
    sort_wall: list[float] = []
    sort_cpu: list[float] = []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        w, c = _best_wall_cpu(lambda: _run(profile, cur), 1)
        run_wall += w
        run_cpu += c
        w, c = _best_wall_cpu(sort_all, 1)
        sort_wall += w
        sort_cpu += c
    run_min, run_med = min(run_wall), statistics.median(run_wall)
    sort_min, sort_med = min(sort_wall), statistics.median(sort_wall)
    gc.collect()
    tracemalloc.start()
    _run(profile, cur)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    emit(
        {
            "tool": "modelmonitor",
            "mode": "profile-run",
            "rows": cur.n_rows,
            "features": len(arrays),
            "run_seconds_min": run_min,
            "run_seconds_median": run_med,
            "sort_seconds_min": sort_min,
            "sort_seconds_median": sort_med,
            "run_cpu_seconds_min": min(run_cpu),
            "sort_cpu_seconds_min": min(sort_cpu),
            "run_over_sort": run_min / sort_min,
            "run_over_sort_cpu": min(run_cpu) / min(sort_cpu),
            "window_raw_mib": raw_bytes / 2**20,
            "run_peak_traced_mib": peak / 2**20,
            "peak_over_window": peak / raw_bytes,
            "repeat": args.repeat,
        }
    )


def scaling(args: argparse.Namespace) -> None:
    from generate import make_table  # bench/ is on sys.path when run as a script

    from modelmonitor.adapters.files.convert import table_to_dataset

    profile = ReferenceProfile.load(args.profile)
    rows_list = [int(r) for r in args.rows.split(",")]
    points = []
    for rows in rows_list:
        cur = table_to_dataset(make_table(rows, current=True, seed=7))
        _run(profile, cur)
        repeat = 1 if rows >= 5_000_000 else args.repeat
        t_wall, t_cpu = _best_wall_cpu(lambda cur=cur: _run(profile, cur), repeat)
        arrays = _window_arrays(cur)
        s_wall, s_cpu = _best_wall_cpu(lambda arrays=arrays: [np.sort(a) for a in arrays], repeat)
        points.append(
            {
                "rows": rows,
                "run_seconds": min(t_wall),
                "sort_seconds": min(s_wall),
                "run_cpu_seconds": min(t_cpu),
                "sort_cpu_seconds": min(s_cpu),
            }
        )
        del cur, arrays
        gc.collect()
    emit({"tool": "modelmonitor", "mode": "scaling", "points": points})


def baseline(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    rss0 = current_rss_mib()
    profile = ReferenceProfile.from_chunks(iter_datasets(args.reference, limits=UNBOUNDED))
    profile.save(args.profile)
    emit(
        {
            "tool": "modelmonitor",
            "mode": "baseline",
            "seconds": time.perf_counter() - t0,
            "rows": profile.n_rows,
            "profile_kib": Path(args.profile).stat().st_size / 1024,
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_import_mib": rss0,
        }
    )


def cli(args: argparse.Namespace) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "modelmonitor", "check", "--reference", args.profile]
    cmd += ["--current", args.current, "--format", "json"]
    cmd += ["--max-rows", "1Gi", "--max-cells", "1Gi", "--max-decoded-bytes", "64Gi"]
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    emit(
        {
            "tool": "modelmonitor",
            "mode": "cli-check-profile",
            "command": "modelmonitor check --reference PROFILE --current CUR --format json",
            "seconds_min": min(times),
            "seconds_median": statistics.median(times),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("e2e")
    p.add_argument("--reference", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--setup", choices=["auto", "tests"], default="auto")
    p.set_defaults(func=e2e)
    p = sub.add_parser("baseline")
    p.add_argument("--reference", required=True)
    p.add_argument("--profile", required=True)
    p.set_defaults(func=baseline)
    p = sub.add_parser("profile-run")
    p.add_argument("--profile", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=profile_run)
    p = sub.add_parser("scaling")
    p.add_argument("--profile", required=True)
    p.add_argument("--rows", default="1000,10000,100000,1000000,10000000")
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=scaling)
    p = sub.add_parser("cli")
    p.add_argument("--profile", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=cli)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
