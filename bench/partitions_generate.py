"""Seeded partitioned data for the streaming benchmark: N rows x 20 columns as Parquet files.

16 numerical columns ``n00``..``n15`` (normal, lognormal, uniform, exponential, in turn)
and 4 categorical ones ``c0``..``c3`` (5, 20, 100 and 1,000 categories, dictionary-
encoded). The current window is written as ``--partitions`` files of equal size under
``OUT/current/``; the reference (``OUT/reference.parquet``, ``--reference-rows`` rows)
comes from the same distributions without any shift.

Shifted in the current window, so that a check has something to find and something not
to: ``n00`` (+0.5 sd), ``n01`` (+0.2 sd), ``n02`` (+0.05 sd, under the Wasserstein
threshold), ``n03`` (scale x1.3), ``c0`` (reweighted), ``c1`` (one new category in 2% of
rows). Each partition gets its own seed, so partitions can be written in any order and
the data is the same for any ``--partitions`` that divides the rows the same way.

    python bench/partitions_generate.py --out bench/data/partitions --rows 10000000 \\
        --partitions 100 [--reference-rows 200000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20261207
NUMERICAL = tuple(f"n{i:02d}" for i in range(16))
CATEGORICAL = ("c0", "c1", "c2", "c3")
CARDINALITIES = (5, 20, 100, 1000)
#: numerical column index -> (mean shift in sd, scale factor) in the current window
SHIFTS = {0: (0.5, 1.0), 1: (0.2, 1.0), 2: (0.05, 1.0), 3: (0.0, 1.3)}


def _numerical(rng: np.random.Generator, i: int, n: int, shifted: bool) -> np.ndarray:
    family = i % 4
    if family == 0:
        x = rng.normal(10.0, 2.0, n)
        sd = 2.0
    elif family == 1:
        x = rng.lognormal(0.0, 0.5, n)
        sd = 0.6
    elif family == 2:
        x = rng.uniform(0.0, 1.0, n)
        sd = 0.29
    else:
        x = rng.exponential(1.0, n)
        sd = 1.0
    if shifted and i in SHIFTS:
        shift, scale = SHIFTS[i]
        centre = float(np.mean(x))
        x = centre + (x - centre) * scale + shift * sd
    return x


def _categorical(rng: np.random.Generator, j: int, n: int, shifted: bool) -> pa.Array:
    k = CARDINALITIES[j]
    weights = np.linspace(1.0, 2.0, k)
    if shifted and j == 0:
        weights = weights[::-1] ** 2  # reweighted
    p = weights / weights.sum()
    codes = rng.choice(k, size=n, p=p).astype(np.int32)
    labels = [f"{CATEGORICAL[j]}_{v}" for v in range(k)]
    if shifted and j == 1:
        codes[rng.random(n) < 0.02] = k  # a category the reference never had
        labels.append(f"{CATEGORICAL[j]}_new")
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels))


def table(n: int, seed: int, *, shifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    for i, name in enumerate(NUMERICAL):
        cols[name] = pa.array(_numerical(rng, i, n, shifted))
    for j, name in enumerate(CATEGORICAL):
        cols[name] = _categorical(rng, j, n, shifted)
    return pa.table(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/data/partitions")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--reference-rows", type=int, default=200_000)
    args = ap.parse_args()
    out = Path(args.out)
    (out / "current").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pq.write_table(table(args.reference_rows, SEED, shifted=False), out / "reference.parquet")
    per = -(-args.rows // args.partitions)
    written = 0
    for i in range(args.partitions):
        n = min(per, args.rows - written)
        if n <= 0:
            break
        pq.write_table(
            table(n, SEED + 1 + i, shifted=True),
            out / "current" / f"part-{i:05d}.parquet",
            row_group_size=128 * 1024,
        )
        written += n
    print(
        f"wrote {written:,} rows x 20 columns in {args.partitions} partitions and a "
        f"{args.reference_rows:,}-row reference under {out} in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
