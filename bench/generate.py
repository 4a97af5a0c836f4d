"""Seeded benchmark data: a reference and a current window with known shifts.

Reference 1,000,000 rows x 50 features (40 numerical ``n00``..``n39``, 10 categorical
``c0``..``c9``), current 100,000 rows. Numerical families cycle through normal,
lognormal, uniform and exponential; categorical cardinalities range from 2 to 100.
Shifted in the current window: ``n00``..``n09`` (mean shifts of 0.05 to 0.5 standard
deviations, scale changes, a tail shift) and ``c0``..``c3`` (reweighted frequencies,
one new category). No missing values, so every tool compares exactly the same numbers.

Written once as Parquet under bench/data/ (gitignored); categorical columns are
dictionary-encoded strings, which every reader (ours, pandas, pyarrow) understands.

    python bench/generate.py [--out bench/data] [--reference-rows N] [--current-rows N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20261126
N_NUMERICAL = 40
N_CATEGORICAL = 10
CARDINALITIES = (2, 3, 5, 8, 10, 20, 30, 50, 100, 4)
NUMERICAL = tuple(f"n{i:02d}" for i in range(N_NUMERICAL))
CATEGORICAL = tuple(f"c{i}" for i in range(N_CATEGORICAL))
#: (mean shift in standard deviations, scale factor) of the shifted numerical features
NUMERICAL_SHIFTS = {
    0: (0.5, 1.0),
    1: (0.3, 1.0),
    2: (0.2, 1.0),
    3: (0.1, 1.0),
    4: (0.05, 1.0),
    5: (0.0, 1.5),
    6: (0.0, 0.7),
    7: (0.25, 1.2),
    8: (0.15, 1.0),
    9: (0.0, 1.0),  # tail shift, see _numerical
}
SHIFTED_CATEGORICAL = (0, 1, 2, 3)


def _numerical(rng: np.random.Generator, i: int, n: int, current: bool) -> np.ndarray:
    shift, scale = NUMERICAL_SHIFTS.get(i, (0.0, 1.0)) if current else (0.0, 1.0)
    family = i % 4
    if family == 0:
        base = rng.standard_normal(n)
    elif family == 1:
        base = rng.lognormal(0.0, 0.5, n)
        base = (base - 1.1331) / 0.6039  # standardised (mean, sd of lognormal(0, .5))
    elif family == 2:
        base = (rng.uniform(0.0, 1.0, n) - 0.5) * np.sqrt(12.0)
    else:
        base = rng.exponential(1.0, n) - 1.0
    x = base * scale + shift
    if current and i == 9:
        tail = rng.random(n) < 0.05
        x[tail] += 3.0
    return 10.0 * i + (1.0 + 0.1 * i) * x


def _probabilities(i: int, current: bool) -> np.ndarray:
    k = CARDINALITIES[i]
    p = np.random.default_rng(SEED + 1000 + i).dirichlet(np.full(k, 2.0))
    if current and i in SHIFTED_CATEGORICAL:
        p = p * np.linspace(0.5, 1.5, k)
        p /= p.sum()
    return p


def _categorical(rng: np.random.Generator, i: int, n: int, current: bool) -> pa.Array:
    k = CARDINALITIES[i]
    labels = [f"{CATEGORICAL[i]}_v{j}" for j in range(k)]
    codes = rng.choice(k, size=n, p=_probabilities(i, current)).astype(np.int32)
    if current and i == 3:
        labels.append(f"{CATEGORICAL[i]}_new")
        codes[rng.random(n) < 0.05] = k
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels))


def make_table(n: int, *, current: bool, seed: int = SEED) -> pa.Table:
    """The reference (``current=False``) or a current window of ``n`` rows."""
    rng = np.random.default_rng(seed + (1 if current else 0))
    cols: dict[str, pa.Array] = {}
    for i, name in enumerate(NUMERICAL):
        cols[name] = pa.array(_numerical(rng, i, n, current))
    for i, name in enumerate(CATEGORICAL):
        cols[name] = _categorical(rng, i, n, current)
    return pa.table(cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "data"))
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--current-rows", type=int, default=100_000)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, n, current in (
        ("reference", args.reference_rows, False),
        ("current", args.current_rows, True),
    ):
        path = out / f"{name}.parquet"
        pq.write_table(make_table(n, current=current), path, row_group_size=131_072)
        print(f"wrote {path} ({n:,} rows, {path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
