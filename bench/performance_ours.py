"""modelmonitor's performance estimation on bench/performance_data.py's files.

Prints one JSON object: per window the estimated and realized accuracy and ROC AUC with
the estimate's interval, and the time (wall and CPU) to fit a 1,000,000-row reference and
estimate a 1,000,000-row window.

``--timing warm|cold`` times only (bench/performance_timing.py runs it): ``warm`` fits
and estimates a 10,000-row slice first (lazy imports and first calls paid), then times
``--repeat`` runs on the 1,000,000-row files; ``cold`` times one run right after the
imports and the reading, and the driver times the whole process.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import modelmonitor
from modelmonitor.core.stats.performance import ClassificationReference

METRICS = ("accuracy", "roc_auc")


def _timed(big_ref: Any, big_cur: Any, repeat: int) -> list[dict[str, float]]:
    ry, rp, rpred = big_ref["y"], big_ref["p"], big_ref["pred"]
    cp, cpred = big_cur["p"], big_cur["pred"]
    timings = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        big = ClassificationReference.fit(ry, rp, reference_pred=rpred)
        fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
        t1, c1 = time.perf_counter(), time.process_time()
        big.evaluate(cp, current_pred=cpred)
        timings.append(
            {
                "fit_s": fit_wall,
                "fit_cpu_s": fit_cpu,
                "estimate_s": time.perf_counter() - t1,
                "estimate_cpu_s": time.process_time() - c1,
                "total_s": time.perf_counter() - wall,
                "total_cpu_s": time.process_time() - cpu,
            }
        )
    return timings


def _timing_only(data: Path, mode: str, repeat: int) -> None:
    big_ref = dict(np.load(data / "big_reference.npz"))
    big_cur = dict(np.load(data / "big_current.npz"))
    if mode == "warm":
        small = {k: v[:10_000] for k, v in big_ref.items()}
        _timed(small, {k: v[:10_000] for k, v in big_cur.items()}, 1)
    timings = _timed(big_ref, big_cur, 1 if mode == "cold" else repeat)
    print(
        json.dumps(
            {
                "tool": "modelmonitor",
                "source": str(Path(modelmonitor.__file__).parents[1]),
                "mode": mode,
                "timing_1m": timings,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--timing", choices=("warm", "cold"), help="time only (see above)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs with --timing warm")
    args = ap.parse_args()
    if args.timing:
        _timing_only(args.data, args.timing, args.repeat)
        return
    ref = np.load(args.data / "reference.npz")
    win = np.load(args.data / "windows.npz")
    fitted = ClassificationReference.fit(ref["y"], ref["p"], reference_pred=ref["pred"])
    windows = []
    for i in range(win["p"].shape[0]):
        r = fitted.evaluate(win["p"][i], current_pred=win["pred"][i], current_y=win["y"][i])
        assert r.estimated is not None
        assert r.realized is not None
        windows.append(
            {
                m: {
                    "estimated": r.estimated[m].value,
                    "lower": r.estimated[m].lower,
                    "upper": r.estimated[m].upper,
                    "realized": r.realized[m].value,
                }
                for m in METRICS
            }
        )
    big_ref = dict(np.load(args.data / "big_reference.npz"))
    big_cur = dict(np.load(args.data / "big_current.npz"))
    timings = _timed(big_ref, big_cur, 3)
    print(json.dumps({"tool": "modelmonitor", "windows": windows, "timing_1m": timings}))


if __name__ == "__main__":
    main()
