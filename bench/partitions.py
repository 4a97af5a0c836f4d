"""Streaming profile + check of a partitioned window: rows/s, peak memory, verdict agreement.

Runs ``modelmonitor check --current DIR`` as a user would (one process, its own peak RSS
read from /proc/self/status VmHWM) over the window ``bench/partitions_generate.py`` wrote,
then checks the streamed answer against the exact in-memory one on a subset: the first
partitions holding ``--subset-rows`` rows, once streamed (``--current`` a folder of links to
them) and once concatenated into one Parquet file read whole (the exact path: exact
samples, no sketch). Both with ``auto`` and with ``--method ks``. Prints a markdown table
and writes the raw record to ``bench/results/partitions-<time>.json``.

    python bench/partitions_generate.py --rows 10000000 --partitions 100
    python bench/partitions.py [--data bench/data/partitions] [--subset-rows 1000000]

Plain Python (numpy, pyarrow and this package); runs anywhere the package installs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_MEASURED = (
    "import sys\n"
    "from modelmonitor.edge.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print(f'maxrss_kib={hwm}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)
UNCAPPED = (
    "--max-rows",
    str(1 << 40),
    "--max-cells",
    str(1 << 40),
    "--max-decoded-bytes",
    str(1 << 50),
)


def check(reference: Path, current: Path, *extra: str) -> dict[str, Any]:
    """One ``modelmonitor check`` process: its JSON report, wall and CPU time, peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURED,
            "check",
            "--reference",
            str(reference),
            "--current",
            str(current),
            "--format",
            "json",
            *UNCAPPED,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"check failed ({proc.returncode}): {proc.stderr[-2000:]}")
    line = [x for x in proc.stderr.splitlines() if x.startswith("maxrss_kib=")][-1]
    report = json.loads(proc.stdout)
    return {
        "report": report,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mib": int(line.split("=", 1)[1]) / 1024,
        "rows": report["current"]["rows"],
    }


def subset(data: Path, rows: int) -> tuple[Path, Path, int]:
    """Links to the first partitions holding ``rows`` rows, and their concatenation."""
    parts = sorted((data / "current").glob("*.parquet"))
    folder = data / "subset"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    chosen, total = [], 0
    for p in parts:
        if total >= rows:
            break
        chosen.append(p)
        total += pq.read_metadata(p).num_rows
        (folder / p.name).symlink_to(p.resolve())
    whole = data / "subset.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(p) for p in chosen]), whole)
    return folder, whole, total


def compare(streamed: dict[str, Any], exact: dict[str, Any]) -> dict[str, Any]:
    """Per feature: the same method and verdict? How far apart are statistic and p-value?"""
    by_name = {f["name"]: f for f in exact["features"]}
    verdicts = stat_err = p_err = 0.0
    worst: dict[str, Any] = {}
    for f in streamed["features"]:
        e = by_name[f["name"]]
        verdicts += f["drifted"] == e["drifted"] and f["method"] == e["method"]
        d = abs(f["statistic"] - e["statistic"])
        if d >= stat_err:
            stat_err, worst = (
                d,
                {
                    "feature": f["name"],
                    "method": f["method"],
                    "streamed": f["statistic"],
                    "exact": e["statistic"],
                },
            )
        if f["p_value"] is not None and e["p_value"] is not None:
            p_err = max(p_err, abs(f["p_value"] - e["p_value"]))
    return {
        "features_agreeing": int(verdicts),
        "features": len(streamed["features"]),
        "dataset_agrees": streamed["dataset"] == exact["dataset"],
        "dataset_streamed": streamed["dataset"],
        "max_statistic_error": stat_err,
        "worst": worst,
        "max_pvalue_error": p_err,
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "mem_gib": round(mem, 1),
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="bench/data/partitions")
    ap.add_argument("--subset-rows", type=int, default=1_000_000)
    ap.add_argument("--skip-full", action="store_true", help="only the subset comparison")
    args = ap.parse_args()
    data = Path(args.data)
    ref = data / "reference.parquet"
    record: dict[str, Any] = {
        "machine": machine(),
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if not args.skip_full:
        full = check(ref, data / "current")
        full["partitions"] = full["report"]["current"]["partitions"]
        full["rows_per_s"] = full["rows"] / full["wall_s"]
        full["rows_per_cpu_s"] = full["rows"] / full["cpu_s"]
        full["dataset"] = full["report"]["dataset"]
        del full["report"]
        record["full"] = full
        print(
            f"full window: {full['rows']:,} rows in {full['partitions']} partitions: "
            f"{full['wall_s']:.1f} s wall, {full['cpu_s']:.1f} s CPU, "
            f"{full['rows_per_s']:,.0f} rows/s, peak RSS {full['peak_rss_mib']:.0f} MiB"
        )
    folder, whole, rows = subset(data, args.subset_rows)
    record["subset_rows"] = rows
    for label, extra in (("auto", ()), ("ks", ("--method", "ks"))):
        streamed = check(ref, folder, *extra)
        exact = check(ref, whole, *extra)
        cmp = compare(streamed["report"], exact["report"])
        cmp["streamed_peak_rss_mib"] = streamed["peak_rss_mib"]
        cmp["exact_peak_rss_mib"] = exact["peak_rss_mib"]
        cmp["streamed_wall_s"], cmp["exact_wall_s"] = streamed["wall_s"], exact["wall_s"]
        record[f"agreement_{label}"] = cmp
        print(
            f"{label}: {cmp['features_agreeing']}/{cmp['features']} feature verdicts agree, "
            f"dataset verdict agrees: {cmp['dataset_agrees']}, max |statistic error| "
            f"{cmp['max_statistic_error']:.2e} ({cmp['worst']['feature']}), max |p-value "
            f"error| {cmp['max_pvalue_error']:.2e}; peak RSS streamed "
            f"{cmp['streamed_peak_rss_mib']:.0f} MiB vs in memory "
            f"{cmp['exact_peak_rss_mib']:.0f} MiB"
        )
    out = Path("bench/results") / f"partitions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
