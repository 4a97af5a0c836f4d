"""Whole processes side by side: ``modelmonitor check`` against Evidently and Alibi Detect.

What a user waits for, interpreter start and imports included: each tool runs as its own
process on the same two Parquet files, the tools interleaved round by round so that all
see about the same machine load, and each round records the load average. Reported per
tool: the median wall clock and CPU time (all threads of the process, from
``getrusage(RUSAGE_CHILDREN)``) over the rounds, and the rivals' ratios to ours.

    .venv/bin/python bench/processes.py --reference-rows 200000 --current-rows 50000 \\
        --numerical 16 --categorical 4 --repeat 5
    .venv/bin/python bench/processes.py --reference-rows 1000000 --current-rows 100000 \\
        --numerical 40 --categorical 10 --repeat 3 --evidently-repeat 1

``--before SRC`` adds ``modelmonitor check`` run from another checkout's ``operator/``
folder (e.g. the main branch) with the same interpreter, for a before/after in one run.
The data comes from ``bench/generate.py`` (its first N numerical and categorical
columns); rivals run in their own virtual environments (see run.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from generate import CATEGORICAL, NUMERICAL, make_table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EVIDENTLY = BENCH / ".venvs/evidently/bin/python"
ALIBI = BENCH / ".venvs/alibi/bin/python"


def _data(args: argparse.Namespace) -> tuple[Path, Path]:
    name = f"procs-{args.reference_rows}x{args.numerical}+{args.categorical}-{args.current_rows}"
    out = BENCH / "data" / name
    ref, cur = out / "reference.parquet", out / "current.parquet"
    if not (ref.exists() and cur.exists()):
        out.mkdir(parents=True, exist_ok=True)
        cols = list(NUMERICAL[: args.numerical]) + list(CATEGORICAL[: args.categorical])
        for path, n, current in ((ref, args.reference_rows, False), (cur, args.current_rows, True)):
            pq.write_table(
                make_table(n, current=current).select(cols), path, row_group_size=131_072
            )
    return ref, cur


def _commands(
    args: argparse.Namespace, ref: Path, cur: Path
) -> dict[str, tuple[list[str], dict[str, str]]]:
    check = ["-m", "modelmonitor", "check", "--reference", str(ref), "--current", str(cur)]
    check += ["--format", "json"]
    env = dict(os.environ)
    tools: dict[str, tuple[list[str], dict[str, str]]] = {
        "modelmonitor check": ([sys.executable, *check], env),
    }
    if args.before:
        before_env = {**env, "PYTHONPATH": str(Path(args.before) / "operator")}
        tools["modelmonitor check (before)"] = ([sys.executable, *check], before_env)
    rival_args = ["--reference", str(ref), "--current", str(cur)]
    if ALIBI.exists() and not args.skip_alibi:
        tools["Alibi Detect TabularDrift"] = (
            [str(ALIBI), str(BENCH / "rival_alibi.py"), *rival_args],
            env,
        )
    if EVIDENTLY.exists() and not args.skip_evidently:
        tools["Evidently DataDriftPreset"] = (
            [str(EVIDENTLY), str(BENCH / "rival_evidently.py"), *rival_args],
            env,
        )
    return tools


def _time(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=BENCH, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    record: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu, "load_1m": load}
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if "dataset" in out:  # ours
            record["drifted"] = out["dataset"]["drifted_features"]
        elif "drifted" in out:
            record["drifted"] = len(out["drifted"])
            record["imports_s"] = out.get("seconds", {}).get("import")
    except (json.JSONDecodeError, IndexError):
        pass
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--current-rows", type=int, default=50_000)
    parser.add_argument("--numerical", type=int, default=16)
    parser.add_argument("--categorical", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--evidently-repeat", type=int, default=None, help="default: --repeat")
    parser.add_argument("--before", help="another checkout to time as 'before'")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--skip-alibi", action="store_true")
    args = parser.parse_args()
    ref, cur = _data(args)
    for p in (ref, cur):
        p.read_bytes()  # the same warm page cache for every tool
    tools = _commands(args, ref, cur)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_path = BENCH / "results" / f"processes-{stamp}.jsonl"
    size = {
        "reference_rows": args.reference_rows,
        "current_rows": args.current_rows,
        "features": args.numerical + args.categorical,
        "categorical": args.categorical,
    }
    records: list[dict[str, Any]] = []
    ev_repeat = args.repeat if args.evidently_repeat is None else args.evidently_repeat
    with out_path.open("w") as f:
        f.write(
            json.dumps({"size": size, "loadavg_at_start": os.getloadavg(), "nproc": os.cpu_count()})
            + "\n"
        )
        for round_ in range(1, args.repeat + 1):
            for tool, (cmd, env) in tools.items():
                if tool.startswith("Evidently") and round_ > ev_repeat:
                    continue
                rec = {"tool": tool, "round": round_, **_time(cmd, env)}
                records.append(rec)
                f.write(json.dumps(rec) + "\n")
                f.flush()
                print(json.dumps(rec), file=sys.stderr)
    table = summarize(records, size)
    out_path.with_suffix(".md").write_text(table)
    print(table)
    print(f"records: {out_path.relative_to(ROOT)}", file=sys.stderr)


def summarize(records: list[dict[str, Any]], size: dict[str, Any]) -> str:
    """Medians per tool and the rivals' ratios to ``modelmonitor check``."""
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_tool.setdefault(r["tool"], []).append(r)

    def med(tool: str, key: str) -> float:
        return statistics.median(r[key] for r in by_tool[tool])

    ours = "modelmonitor check"
    lines = [
        f"Reference {size['reference_rows']:,} x {size['features']} "
        f"({size['categorical']} categorical), current {size['current_rows']:,} rows, Parquet; "
        "whole processes (interpreter start and imports included), medians over rounds.",
        "",
        "| tool | runs | wall s (median) | CPU s (median) | wall / ours | CPU / ours | "
        "load avg (1 min) during its runs | drifted features |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tool, recs in by_tool.items():
        loads = [r["load_1m"] for r in recs]
        drifted = sorted({r.get("drifted") for r in recs} - {None})
        lines.append(
            f"| {tool} | {len(recs)} | {med(tool, 'wall_s'):.2f} | {med(tool, 'cpu_s'):.2f} | "
            f"{med(tool, 'wall_s') / med(ours, 'wall_s'):.1f}x | "
            f"{med(tool, 'cpu_s') / med(ours, 'cpu_s'):.1f}x | "
            f"{min(loads):.1f}-{max(loads):.1f} | {', '.join(map(str, drifted))} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
