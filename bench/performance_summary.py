"""Summarise bench/performance_*.py's JSON records (one per line on stdin) as markdown."""

from __future__ import annotations

import json
import statistics
import sys


def main() -> None:
    records = [json.loads(line) for line in sys.stdin if line.strip()]
    print("| tool | metric | mean abs. error | max abs. error | 95% interval coverage |")
    print("|---|---|---|---|---|")
    for r in records:
        for m in ("accuracy", "roc_auc"):
            w = [x[m] for x in r["windows"]]
            err = [abs(x["estimated"] - x["realized"]) for x in w]
            cov = sum(x["lower"] <= x["realized"] <= x["upper"] for x in w) / len(w)
            print(
                f"| {r['tool']} {r.get('version', '')} | {m} | {statistics.mean(err):.4f} | "
                f"{max(err):.4f} | {cov:.1%} ({len(w)} windows) |"
            )
    print()
    print("| tool | fit 1M s | estimate 1M s | end to end s (best of 3) | end to end CPU s |")
    print("|---|---|---|---|---|")
    for r in records:
        best = min(r["timing_1m"], key=lambda t: t["total_s"])
        cpu = min(t["total_cpu_s"] for t in r["timing_1m"])
        print(
            f"| {r['tool']} | {best['fit_s']:.2f} | {best['estimate_s']:.2f} | "
            f"{best['total_s']:.2f} | {cpu:.2f} |"
        )


if __name__ == "__main__":
    main()
