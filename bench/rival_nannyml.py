"""NannyML's CBPE on bench/performance_data.py's files (run in bench/.venvs/nannyml).

Same output as bench/performance_ours.py: per window the estimated and realized
accuracy and ROC AUC, with NannyML's sampling error turned into a 95% interval (estimate
+- 1.96 sampling errors; its own alert bands are +- 3), and the time to fit a
1,000,000-row reference and estimate a 1,000,000-row window (one chunk).
``--timing warm|cold``: as in bench/performance_ours.py (time only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no analytics calls (and no retries timed)

import nannyml as nml
import numpy as np
import pandas as pd

METRICS = ("accuracy", "roc_auc")


def _frame(npz: object) -> pd.DataFrame:
    return pd.DataFrame({k: npz[k] for k in ("x1", "x2", "p", "y", "pred")})  # type: ignore[index]


def _cbpe(**kwargs: object) -> nml.CBPE:
    return nml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="p",
        y_pred="pred",
        y_true="y",
        metrics=list(METRICS),
        **kwargs,
    )


def _timed(big_ref: pd.DataFrame, big_cur: pd.DataFrame, repeat: int) -> list[dict[str, float]]:
    timings = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        big = _cbpe(chunk_number=1)
        big.fit(big_ref)
        fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
        t1, c1 = time.perf_counter(), time.process_time()
        big.estimate(big_cur)
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
    big_ref = _frame(np.load(data / "big_reference.npz"))
    big_cur = _frame(np.load(data / "big_current.npz")).drop(columns=["y"])
    if mode == "warm":
        _timed(big_ref.iloc[:10_000], big_cur.iloc[:10_000], 1)
    timings = _timed(big_ref, big_cur, 1 if mode == "cold" else repeat)
    out = {"tool": "nannyml", "version": nml.__version__, "mode": mode, "timing_1m": timings}
    print(json.dumps(out))


def main() -> None:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--timing", choices=("warm", "cold"), help="time only (see above)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs with --timing warm")
    args = ap.parse_args()
    if args.timing:
        _timing_only(args.data, args.timing, args.repeat)
        return
    ref = _frame(np.load(args.data / "reference.npz"))
    win = np.load(args.data / "windows.npz")
    n_win, size = win["p"].shape
    analysis = pd.DataFrame({k: win[k].reshape(-1) for k in ("x1", "x2", "p", "y", "pred")})
    est = _cbpe(chunk_size=size)
    est.fit(ref)
    df = est.estimate(analysis).filter(period="analysis").to_df()
    windows = []
    for i in range(n_win):
        row = {}
        for m in METRICS:
            value = float(df[(m, "value")].iloc[i])
            se = float(df[(m, "sampling_error")].iloc[i])
            row[m] = {
                "estimated": value,
                "lower": value - 1.96 * se,
                "upper": value + 1.96 * se,
                "realized": float(df[(m, "realized")].iloc[i]),
            }
        windows.append(row)
    big_ref = _frame(np.load(args.data / "big_reference.npz"))
    big_cur = _frame(np.load(args.data / "big_current.npz")).drop(columns=["y"])
    timings = _timed(big_ref, big_cur, 3)
    print(
        json.dumps(
            {
                "tool": "nannyml",
                "version": nml.__version__,
                "windows": windows,
                "timing_1m": timings,
            }
        )
    )


if __name__ == "__main__":
    main()
