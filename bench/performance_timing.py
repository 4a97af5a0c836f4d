"""Performance estimation, time only: modelmonitor against NannyML's CBPE, interleaved.

Fit on the 1,000,000-row reference and estimate the 1,000,000-row window of
bench/performance_data.py, each tool in its own process and virtual environment, round by
round with the order of the tools alternating (ABBA), so that all see about the same load
on a shared machine. Two kinds of process per tool and round:

* ``warm``: imports, reading and a 10,000-row fit and estimate first, then ``--runs``
  timed fits and estimates on 1,000,000 rows (wall clock and CPU time of the process);
* ``cold``: one fit and estimate right after the imports and the reading, as a user's
  script or notebook cell pays it; the driver times the whole process as well
  (interpreter start, imports and reading the ``.npz`` files included; CPU time from
  ``getrusage(RUSAGE_CHILDREN)``, all threads).

Reported: medians over the rounds, the 1-minute load average of each round, and NannyML's
ratios to ours. ``--before SRC`` adds our script run against another checkout's
``operator/`` (e.g. the main branch before a change), same interpreter.

    .venv/bin/python bench/performance_timing.py --data bench/data/perf --rounds 5 \\
        [--before /tmp/main-export]
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

BENCH = Path(__file__).resolve().parent
NANNYML = BENCH / ".venvs/nannyml/bin/python"


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    out["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out["load_1m"] = load
    return out


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(records: list[dict[str, Any]]) -> str:
    tools = list(dict.fromkeys(r["label"] for r in records))
    rows: dict[str, dict[str, Any]] = {}
    for tool in tools:
        mine = [r for r in records if r["label"] == tool]
        warm = [t for r in mine if r["mode"] == "warm" for t in r["timing_1m"]]
        cold = [r for r in mine if r["mode"] == "cold"]
        loads = [r["load_1m"] for r in records if r["label"] == tool]
        rows[tool] = {
            "runs": (len(warm), len(cold)),
            "fit": _median([t["fit_s"] for t in warm]),
            "fit_cpu": _median([t["fit_cpu_s"] for t in warm]),
            "est": _median([t["estimate_s"] for t in warm]),
            "est_cpu": _median([t["estimate_cpu_s"] for t in warm]),
            "warm": _median([t["total_s"] for t in warm]),
            "warm_cpu": _median([t["total_cpu_s"] for t in warm]),
            "cold": _median([r["timing_1m"][0]["total_s"] for r in cold]),
            "cold_cpu": _median([r["timing_1m"][0]["total_cpu_s"] for r in cold]),
            "proc": _median([r["process_wall_s"] for r in cold]),
            "proc_cpu": _median([r["process_cpu_s"] for r in cold]),
            "load": (min(loads), max(loads)),
        }
    lines = [
        "| tool | runs (warm / cold) | fit s | fit CPU s | estimate s | estimate CPU s "
        "| end to end s | end to end CPU s | cold end to end s / CPU s "
        "| whole process s / CPU s | load avg (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tool, r in rows.items():
        lines.append(
            f"| {tool} | {r['runs'][0]} / {r['runs'][1]} | {r['fit']:.3f} | {r['fit_cpu']:.3f} "
            f"| {r['est']:.3f} | {r['est_cpu']:.3f} | {r['warm']:.3f} | {r['warm_cpu']:.3f} "
            f"| {r['cold']:.3f} / {r['cold_cpu']:.3f} | {r['proc']:.2f} / {r['proc_cpu']:.2f} "
            f"| {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        )
    rival = next((t for t in tools if t.startswith("NannyML")), None)
    if rival is not None:
        lines.append("")
        for tool in tools:
            if tool == rival:
                continue
            a, b = rows[rival], rows[tool]
            lines.append(
                f"- {rival} / {tool}: end to end (warm) **{a['warm'] / b['warm']:.1f}x** wall, "
                f"**{a['warm_cpu'] / b['warm_cpu']:.1f}x** CPU; cold run "
                f"{a['cold'] / b['cold']:.1f}x wall, {a['cold_cpu'] / b['cold_cpu']:.1f}x CPU; "
                f"whole process {a['proc'] / b['proc']:.1f}x wall, "
                f"{a['proc_cpu'] / b['proc_cpu']:.1f}x CPU."
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=BENCH / "data/perf")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=2, help="timed runs per warm process")
    ap.add_argument("--before", help="another checkout whose operator/ to time as 'before'")
    ap.add_argument("--summarize", type=Path, help="only summarise this .jsonl")
    args = ap.parse_args()
    if args.summarize:
        recs = [json.loads(x) for x in args.summarize.read_text().splitlines()[1:] if x.strip()]
        print(summarize(recs))
        return
    data = str(args.data.resolve())
    for name in ("big_reference.npz", "big_current.npz"):
        (args.data / name).read_bytes()  # the same warm page cache for every process
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    ours = [sys.executable, str(BENCH / "performance_ours.py"), "--data", data]
    tools: list[tuple[str, list[str], dict[str, str]]] = [("modelmonitor", ours, env)]
    if args.before:
        before_env = {**env, "PYTHONPATH": str(Path(args.before).resolve() / "operator")}
        tools.append(("modelmonitor (before)", ours, before_env))
    if NANNYML.exists():
        nml = [str(NANNYML), str(BENCH / "rival_nannyml.py"), "--data", data]
        tools.append(("NannyML", nml, env))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_path = BENCH / "results" / f"performance-timing-{stamp}.jsonl"
    records: list[dict[str, Any]] = []
    with out_path.open("w") as f:
        f.write(json.dumps({"loadavg_at_start": os.getloadavg(), "nproc": os.cpu_count()}) + "\n")
        for round_ in range(args.rounds):
            order = tools if round_ % 2 == 0 else tools[::-1]
            for label, cmd, tool_env in order:
                for mode in ("warm", "cold"):
                    extra = ["--timing", mode, "--repeat", str(args.runs)]
                    rec = _run([*cmd, *extra], tool_env)
                    rec.update(label=label, round=round_ + 1)
                    if label == "NannyML":
                        rec["label"] = f"NannyML {rec.get('version', '')}".strip()
                    records.append(rec)
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
                    print(
                        f"round {round_ + 1} {label} {mode}: "
                        f"{rec['timing_1m'][0]['total_s']:.2f} s, "
                        f"process {rec['process_wall_s']:.2f} s, "
                        f"{rec['process_cpu_s']:.2f} s CPU, "
                        f"load {rec['load_1m']:.1f}",
                        file=sys.stderr,
                    )
    table = summarize(records)
    out_path.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
