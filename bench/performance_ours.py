"""modelmonitor's performance estimation on bench/performance_data.py's files.

Prints one JSON object: per window the estimated and realized accuracy and ROC AUC with
the estimate's interval, and the time (wall and CPU) to fit a 1,000,000-row reference and
estimate a 1,000,000-row window.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from modelmonitor.core.stats.performance import ClassificationReference

METRICS = ("accuracy", "roc_auc")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
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
    big_ref, big_cur = (
        np.load(args.data / "big_reference.npz"),
        np.load(args.data / "big_current.npz"),
    )
    ry, rp, rpred = big_ref["y"], big_ref["p"], big_ref["pred"]
    cp, cpred = big_cur["p"], big_cur["pred"]
    timings = []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        big = ClassificationReference.fit(ry, rp, reference_pred=rpred)
        fit_wall = time.perf_counter() - wall
        t1 = time.perf_counter()
        big.evaluate(cp, current_pred=cpred)
        timings.append(
            {
                "fit_s": fit_wall,
                "estimate_s": time.perf_counter() - t1,
                "total_s": time.perf_counter() - wall,
                "total_cpu_s": time.process_time() - cpu,
            }
        )
    print(json.dumps({"tool": "modelmonitor", "windows": windows, "timing_1m": timings}))


if __name__ == "__main__":
    main()
