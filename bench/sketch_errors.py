"""How far statistics read from a partitioned window's sketches are from the exact ones.

For each method, data family and window size: the window is generated, checked once as
rows (exact: every value) and once as the merged profile of 20 partitions (what a
partitioned window gives: exact sample up to 1,000 values, KLL k=1000 beyond), against
the same reference. Reported per method: the largest and the 99th-percentile absolute
difference of the statistic (and of the p-value for tests) over the trials, and how many
verdicts differ. Prints a markdown table (docs/statistics.md records it).

    python bench/sketch_errors.py [--trials 30]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.stats.drift import analyze
from modelmonitor.core.stats.partitions import WINDOW_RANK_EPSILON, ProfileSchema, profile_stream
from modelmonitor.core.stats.profile import ReferenceProfile

NUM = (Feature("x", "numerical"),)
CAT = (Feature("c", "categorical"),)
FAMILIES = {
    "normal": lambda rng, n, s: rng.normal(s, 1.0, n),
    "lognormal": lambda rng, n, s: rng.lognormal(s, 0.8, n),
    "exponential": lambda rng, n, s: rng.exponential(1.0 + s, n),
}


def _parts(ds: Dataset, k: int = 20) -> list[Dataset]:
    idx = np.array_split(np.arange(ds.n_rows), k)
    return [ds.take(i) for i in idx]


def rank_error(trials: int) -> float:
    """Worst |CDF error| of merged window sketches over 2,000 ranks: 30 partitions of
    300,000 lognormal values, merged ``trials`` times (each merge a fresh sketch)."""
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=300_000)
    grid = np.quantile(x, np.linspace(0.0005, 0.9995, 2000))
    truth = np.searchsorted(np.sort(x), grid, side="right") / x.size
    schema = ProfileSchema(NUM)
    parts = _parts(Dataset({"x": x}), 30)
    worst = 0.0
    for _ in range(trials):
        prof = profile_stream(parts, schema)["x"]
        worst = max(worst, float(np.max(np.abs(prof.cdf(grid) - truth))))  # type: ignore[union-attr]
    return worst


def numerical(trials: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    schema = ProfileSchema(NUM)
    for fam, gen in FAMILIES.items():
        for n_cur in (20_000, 200_000):
            for t in range(trials):
                rng = np.random.default_rng(1000 * t + n_cur)
                shift = 0.0 if t % 2 == 0 else 0.05  # half without, half with a small shift
                ref_exact = ReferenceProfile.from_dataset(
                    Dataset({"x": gen(rng, 1000, 0.0)}), list(NUM)
                )
                ref_sketch = ReferenceProfile.from_dataset(
                    Dataset({"x": gen(rng, 200_000, 0.0)}), list(NUM)
                )  # > exact_limit: KLL k=200, as `baseline` saves it
                cur = Dataset({"x": gen(rng, n_cur, shift)})
                prof = profile_stream(_parts(cur), schema)
                for method in ("ks", "ttest"):
                    e = analyze(ref_exact, cur, features=NUM, method=method).features[0]
                    a = analyze(ref_exact, prof, features=NUM, method=method).features[0]
                    out[(method, f"exact ref 1k, window {n_cur:,}")].append(_diff(e, a))
                for method in ("wasserstein", "psi", "jensenshannon", "hellinger", "kl"):
                    for label, ref in (("exact ref 1k", ref_exact), ("sketched ref", ref_sketch)):
                        e = analyze(ref, cur, features=NUM, method=method).features[0]
                        a = analyze(ref, prof, features=NUM, method=method).features[0]
                        out[(method, f"{label}, window {n_cur:,}")].append(_diff(e, a, fam))
    return out


def categorical(trials: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for k, cap in ((20, 10_000), (5_000, 1_000)):
        schema = ProfileSchema(CAT, category_cap=cap)
        for t in range(trials):
            rng = np.random.default_rng(7 + t)
            w = 1.0 / np.arange(1, k + 1)  # Zipf-like: a few frequent labels, a long tail
            p = w / w.sum()
            labels = tuple(f"v{i}" for i in range(k))
            ref = ReferenceProfile.from_dataset(
                Dataset(
                    {"c": CategoricalColumn(rng.choice(k, 5000, p=p).astype(np.int32), labels)}
                ),
                list(CAT),
            )
            q = p if t % 2 == 0 else np.roll(p, 1)
            cur = Dataset(
                {"c": CategoricalColumn(rng.choice(k, 200_000, p=q).astype(np.int32), labels)}
            )
            prof = profile_stream(_parts(cur), schema)
            where = f"{k:,} labels, cap {cap:,}" + (" (sketched)" if k > cap else " (exact)")
            # chi2 is refused on a sketched window (its counts are estimates)
            for method in (
                ("chi2", "jensenshannon", "psi") if k <= cap else ("jensenshannon", "psi")
            ):
                e = analyze(ref, cur, features=CAT, method=method).features[0]
                a = analyze(ref, prof, features=CAT, method=method).features[0]
                out[(method, where)].append(_diff(e, a))
    return out


def _diff(e: Any, a: Any, family: str = "") -> dict[str, Any]:
    return {
        "stat": abs(a.statistic - e.statistic),
        "p": None if e.p_value is None else abs(a.p_value - e.p_value),
        "flip": a.drifted != e.drifted,
        "approx": a.approximate,
        "family": family,
    }


def table(rows: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    lines = [
        "| method | setting | exact? | max abs stat error | p99 stat error | max abs p error "
        "| verdicts differing |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, setting), ds in rows.items():
        stats = np.array([d["stat"] for d in ds])
        ps = [d["p"] for d in ds if d["p"] is not None]
        exact = "approximate" if any(d["approx"] for d in ds) else "exact"
        lines.append(
            f"| {method} | {setting} | {exact} | {stats.max():.2e} | "
            f"{np.quantile(stats, 0.99):.2e} | {max(ps):.2e} |"
            if ps
            else f"| {method} | {setting} | {exact} | {stats.max():.2e} | "
            f"{np.quantile(stats, 0.99):.2e} | - |"
        )
        lines[-1] += f" {sum(d['flip'] for d in ds)} of {len(ds)} |"
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    args = ap.parse_args()
    started = time.perf_counter()
    rows = numerical(args.trials)
    rows.update(categorical(args.trials))
    print(
        f"window rank error epsilon = {WINDOW_RANK_EPSILON:.5f}; {args.trials} trials per row; "
        f"families: {', '.join(FAMILIES)} (numerical rows pool them)"
    )
    print(table(rows))
    print(
        f"\nworst CDF error of merged window sketches (2,000 ranks, {args.trials} merges of "
        f"30 partitions): {rank_error(args.trials):.5f}"
    )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
