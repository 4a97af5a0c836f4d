"""Turn one benchmark run (JSON lines from run.sh) into the Markdown tables of README.md.

python bench/summarize.py bench/results/run-<time>.jsonl
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def summarize(records: list[dict[str, Any]]) -> str:
    machine = next((r["machine"] for r in records if "machine" in r), {})
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if "tool" in r:
            key = r.get("mode", r["tool"])
            by_mode.setdefault(key if r["tool"] == "modelmonitor" else r["tool"], []).append(r)
    out: list[str] = []
    if machine:
        out.append(
            f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
            f"Linux {machine['kernel']}; Python {machine['python']}, numpy {machine['numpy']}, "
            f"pyarrow {machine['pyarrow']}, scipy {machine['scipy']}; load average at start "
            f"{', '.join(f'{x:.1f}' for x in machine['loadavg_at_start'])}."
        )
        out.append("")

    def best(mode: str) -> dict[str, Any] | None:
        runs = by_mode.get(mode)
        return min(runs, key=lambda r: r["total_seconds"]) if runs else None

    rows = [
        ("modelmonitor, auto (Wasserstein / Jensen-Shannon)", best("e2e-auto")),
        ("modelmonitor, KS + chi-squared (exact reference)", best("e2e-tests")),
        ("Evidently DataDriftPreset", best("evidently")),
        ("Alibi Detect TabularDrift (KS + chi-squared)", best("alibi-detect")),
    ]
    out.append(
        "| tool | version | load s | compute s | end to end s | end to end CPU s | imports s | "
        "peak RSS MiB | drifted features |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        if r is None:
            continue
        secs = r["seconds"]
        load = sum(v for k, v in secs.items() if k.startswith("load"))
        compute = r["total_seconds"] - load
        out.append(
            f"| {label} | {r.get('version', 'this repo')} | {_fmt(load)} | {_fmt(compute)} | "
            f"{_fmt(r['total_seconds'])} | {_fmt(r.get('total_cpu_seconds', math.nan))} | "
            f"{_fmt(secs.get('import', math.nan))} | {r['peak_rss_mib']:.0f} | "
            f"{len(r['drifted'])} |"
        )
    out.append("")
    ours_auto, ours_tests = best("e2e-auto"), best("e2e-tests")
    ev, al = best("evidently"), best("alibi-detect")

    def ratio(a: dict[str, Any], b: dict[str, Any]) -> str:
        wall = a["total_seconds"] / b["total_seconds"]
        cpu = a.get("total_cpu_seconds", math.nan) / b.get("total_cpu_seconds", math.nan)
        return f"**{wall:.1f}x** wall clock, **{cpu:.1f}x** CPU time"

    if ours_auto and ev:
        out.append(
            f"- Evidently / modelmonitor auto, end to end: {ratio(ev, ours_auto)} "
            f"(target >= 10x); peak RSS {ev['peak_rss_mib'] / ours_auto['peak_rss_mib']:.1f}x."
        )
    if ours_tests and al:
        out.append(
            f"- Alibi Detect / modelmonitor KS + chi-squared, end to end: "
            f"{ratio(al, ours_tests)} (target >= 3x); peak RSS "
            f"{al['peak_rss_mib'] / ours_tests['peak_rss_mib']:.1f}x."
        )
    if ours_auto and al:
        out.append(
            f"- Alibi Detect / modelmonitor auto, end to end: {ratio(al, ours_auto)}; peak RSS "
            f"{al['peak_rss_mib'] / ours_auto['peak_rss_mib']:.1f}x."
        )
    for key in ("e2e-auto", "e2e-tests"):
        runs = by_mode.get(key, [])
        if len(runs) > 1:
            t = [r["total_seconds"] for r in runs]
            out.append(
                f"- {key}: {len(t)} runs, min {min(t):.3f} s, median "
                f"{statistics.median(t):.3f} s, max {max(t):.3f} s."
            )
    out.append("")
    pr = (by_mode.get("profile-run") or [None])[0]
    if pr:
        out.append(
            f"With a precomputed profile, {pr['rows']:,} x {pr['features']} window in memory "
            f"(best of {pr['repeat']}):"
        )
        out.append("")
        out.append("| measure | wall clock | CPU time | target |")
        out.append("|---|---|---|---|")
        out.append(
            f"| run (drift + data quality) | {pr['run_seconds_min']:.3f} s | "
            f"{pr['run_cpu_seconds_min']:.3f} s | |"
        )
        out.append(
            f"| numpy sorting every column | {pr['sort_seconds_min']:.3f} s | "
            f"{pr['sort_cpu_seconds_min']:.3f} s | |"
        )
        out.append(
            f"| run / sort | **{pr['run_over_sort']:.2f}x** | **{pr['run_over_sort_cpu']:.2f}x** "
            "| <= 3x |"
        )
        out.append(f"| window raw arrays | {pr['window_raw_mib']:.1f} MiB | | |")
        out.append(f"| peak traced memory of a run | {pr['run_peak_traced_mib']:.1f} MiB | | |")
        out.append(f"| peak / window | **{pr['peak_over_window']:.2f}x** | | < 2x |")
        out.append("")
    bl = (by_mode.get("baseline") or [None])[0]
    if bl:
        out.append(
            f"Profile build (`baseline`, streamed in chunks): {bl['rows']:,} rows in "
            f"{bl['seconds']:.2f} s, peak RSS {bl['peak_rss_mib']:.0f} MiB, profile "
            f"{bl['profile_kib']:.0f} KiB."
        )
    cli = (by_mode.get("cli-check-profile") or [None])[0]
    if cli:
        out.append(
            f"`{cli['command']}` as a process (interpreter start and imports included): "
            f"{cli['seconds_min']:.2f} s (best of runs), median {cli['seconds_median']:.2f} s."
        )
    out.append("")
    sc = (by_mode.get("scaling") or [None])[0]
    if sc:
        out.append(
            "| current rows | run s | sort s | run / sort | run CPU s | sort CPU s | "
            "run / sort (CPU) | run CPU x per 10x rows |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        prev = None
        for p in sc["points"]:
            cpu = p.get("run_cpu_seconds", p["run_seconds"])
            scpu = p.get("sort_cpu_seconds", p["sort_seconds"])
            growth = "" if prev is None else f"{cpu / prev:.1f}"
            out.append(
                f"| {p['rows']:,} | {p['run_seconds']:.4f} | {p['sort_seconds']:.4f} | "
                f"{p['run_seconds'] / p['sort_seconds']:.1f} | {cpu:.4f} | {scpu:.4f} | "
                f"{cpu / scpu:.1f} | {growth} |"
            )
            prev = cpu
    return "\n".join(out) + "\n"


def main() -> None:
    sys.stdout.write(summarize(_load(Path(sys.argv[1]))))


if __name__ == "__main__":
    main()
