"""Seeded data for the performance-estimation benchmark (bench/README.md).

A binary classifier whose scores are calibrated (the score is the true probability of
the positive class), a reference of 100,000 rows, and 300 analysis windows of 2,000 rows
whose inputs drift (covariate shift: the mean of x1 moves from 0 to 1.5 and x2's spread
grows), so accuracy and ROC AUC change while P(y | x) does not. Labels are drawn from
the true probabilities. Also a reference and a window of 1,000,000 rows each for timing.
Written as .npz so every tool's environment reads the same numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

WINDOWS = 300
WINDOW_ROWS = 2000


def _rows(rng: np.random.Generator, n: int, mean: float, spread: float) -> dict[str, np.ndarray]:
    x1 = rng.normal(mean, 1.0, n)
    x2 = rng.normal(0.0, spread, n)
    p = 1.0 / (1.0 + np.exp(-(1.4 * x1 - 0.8 * x2 + 0.3 * x1 * x2)))
    y = (rng.random(n) < p).astype(np.int64)
    return {"x1": x1, "x2": x2, "p": p, "y": y, "pred": (p >= 0.5).astype(np.int64)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261207)
    np.savez(args.out / "reference.npz", **_rows(rng, 100_000, 0.0, 1.0))
    windows = [
        _rows(rng, WINDOW_ROWS, 1.5 * w / (WINDOWS - 1), 1.0 + 0.8 * w / (WINDOWS - 1))
        for w in range(WINDOWS)
    ]
    np.savez(args.out / "windows.npz", **{k: np.stack([w[k] for w in windows]) for k in windows[0]})
    np.savez(args.out / "big_reference.npz", **_rows(rng, 1_000_000, 0.0, 1.0))
    np.savez(args.out / "big_current.npz", **_rows(rng, 1_000_000, 0.7, 1.3))


if __name__ == "__main__":
    main()
