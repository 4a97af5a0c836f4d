"""Statistical quality of the drift defaults: detection power and false-positive rate.

Seeded synthetic cases, each repeated ``reps`` times (>= 200 for the recorded table):
a reference and a current window are drawn from the same generator, then one feature of
the current window is shifted (or none, for ``no_shift``), and ``analyze`` runs with its
defaults (``method="auto"``, Bonferroni, alpha 0.05, per-method thresholds).

* power: share of repetitions in which the shifted feature is flagged;
* FPR (per feature): share of (repetition, unshifted feature) pairs flagged;
* FWER: share of repetitions in which any unshifted feature is flagged - the quantity
  the Bonferroni correction bounds by alpha;
* dataset: share of repetitions in which the data set is declared drifted.

Regimes: ``small`` (raw reference 500 rows, current 500: ``auto`` picks tests),
``large`` (reference 20,000 rows summarised in a saved profile, current 5,000: ``auto``
picks distances on the sketch) and ``small_window`` (the same saved profile, current
500: distances with their noise-floor thresholds for numerical features, tests for
categorical ones).

Run: ``.venv/bin/python bench/quality.py [--reps 200]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Dataset
from modelmonitor.core.stats import ReferenceProfile, analyze

CAT_P = np.array([0.4, 0.3, 0.2, 0.1])
CAT_LABELS = ("a", "b", "c", "d", "new")
#: name -> (reference rows, current rows, reference given as a saved profile)
REGIMES: dict[str, tuple[int, int, bool]] = {
    "small": (500, 500, False),
    "large": (20_000, 5_000, True),
    "small_window": (20_000, 500, True),
}


def _draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Six numerical features of different shapes, three categorical ones (as codes)."""
    return {
        "x_normal": rng.normal(0.0, 1.0, n),
        "x_lognormal": rng.lognormal(0.0, 0.75, n),
        "x_uniform": rng.uniform(-1.0, 1.0, n),
        "x_exponential": rng.exponential(2.0, n),
        "x_t3": rng.standard_t(3, n),
        "x_counts": rng.poisson(4.0, n).astype(np.float64),
        "c_four": rng.choice(4, n, p=CAT_P),
        "c_binary": (rng.random(n) < 0.3).astype(np.int64),
        "c_ten": rng.integers(0, 10, n),
    }


def _dataset(cols: dict[str, np.ndarray]) -> Dataset:
    out: dict[str, np.ndarray | CategoricalColumn] = {}
    for name, values in cols.items():
        if name == "c_four":
            out[name] = CategoricalColumn(values.astype(np.int32), CAT_LABELS)
        elif name == "c_binary":
            out[name] = CategoricalColumn(values.astype(np.int32), ("no", "yes"))
        elif name == "c_ten":
            out[name] = CategoricalColumn(values.astype(np.int32), tuple("0123456789"))
        else:
            out[name] = values
    return Dataset(out)


Shift = Callable[[np.random.Generator, dict[str, np.ndarray]], str | None]


def _no_shift(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> str | None:
    return None


def _mean_shift(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> str:
    cols["x_normal"] = cols["x_normal"] + 0.25  # 0.25 standard deviations
    return "x_normal"


def _variance_shift(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> str:
    cols["x_normal"] = cols["x_normal"] * 1.5  # std 1 -> 1.5, same mean
    return "x_normal"


def _tail_shift(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> str:
    x = cols["x_normal"].copy()
    hit = rng.random(x.size) < 0.05  # 5% of values move 4 standard deviations up
    x[hit] += 4.0
    cols["x_normal"] = x
    return "x_normal"


def _category_frequency_shift(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> str:
    n = cols["c_four"].size
    cols["c_four"] = rng.choice(4, n, p=[0.3, 0.3, 0.25, 0.15])
    return "c_four"


def _new_category(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> str:
    c = cols["c_four"].copy()
    c[rng.random(c.size) < 0.05] = 4  # 5% of values become a category never seen before
    cols["c_four"] = c
    return "c_four"


CASES: dict[str, Shift] = {
    "no_shift": _no_shift,
    "mean_shift": _mean_shift,
    "variance_shift": _variance_shift,
    "tail_shift": _tail_shift,
    "category_frequency_shift": _category_frequency_shift,
    "new_category": _new_category,
}


@dataclass(frozen=True)
class QualityResult:
    case: str
    regime: str
    reps: int
    methods: tuple[str, ...]
    """Methods ``auto`` chose for the shifted feature (or all, under no shift)."""
    power: float | None
    fpr: float
    fwer: float
    dataset_drift: float


def study(
    case: str,
    *,
    regime: str = "small",
    reps: int = 200,
    seed: int = 0,
    method: str = "auto",
    numerical_method: str | None = None,
    correction: str = "bonferroni",
) -> QualityResult:
    """Repeat one case ``reps`` times and count detections (see the module docstring).

    ``numerical_method`` overrides the method of the numerical features only.
    """
    shift = CASES[case]
    n_ref, n_cur, as_profile = REGIMES[regime]
    rng = np.random.default_rng([seed, list(CASES).index(case), list(REGIMES).index(regime)])
    hits = false_pos = any_false = ds_drift = unshifted_total = 0
    methods: set[str] = set()
    for _ in range(reps):
        ref = _dataset(_draw(rng, n_ref))
        cur_cols = _draw(rng, n_cur)
        target = shift(rng, cur_cols)
        reference: Dataset | ReferenceProfile = ref
        if as_profile:  # a saved profile, as the operator uses it
            reference = ReferenceProfile.from_json(ReferenceProfile.from_dataset(ref).to_json())
        overrides = (
            {name: numerical_method for name in cur_cols if name.startswith("x_")}
            if numerical_method
            else None
        )
        report = analyze(
            reference,
            _dataset(cur_cols),
            method=method,
            methods=overrides,
            correction=correction,
        )
        flagged_other = 0
        for f in report.features:
            if f.name == target:
                hits += f.drifted
                methods.add(f.method)
            else:
                unshifted_total += 1
                flagged_other += f.drifted
                if target is None:
                    methods.add(f.method)
        false_pos += flagged_other
        any_false += flagged_other > 0
        ds_drift += report.dataset.drifted
    return QualityResult(
        case,
        regime,
        reps,
        tuple(sorted(methods)),
        hits / reps if CASES[case] is not _no_shift else None,
        false_pos / unshifted_total,
        any_false / reps,
        ds_drift / reps,
    )


def table(results: list[QualityResult]) -> str:
    lines = [
        "| regime | case | methods (auto) | power | FPR per feature | FWER | dataset drift |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        power = "-" if r.power is None else f"{r.power:.3f}"
        lines.append(
            f"| {r.regime} | {r.case} | {', '.join(r.methods)} | {power} | {r.fpr:.4f} | "
            f"{r.fwer:.3f} | {r.dataset_drift:.3f} |"
        )
    return "\n".join(lines)


NUMERICAL_CASES = ("no_shift", "mean_shift", "variance_shift", "tail_shift")


def compare_numerical(*, reps: int, seed: int, regimes: list[str]) -> str:
    """Power (FPR for no_shift) of each numerical method, as a Markdown table."""
    from modelmonitor.core.stats.methods import NUMERICAL

    lines = [
        "| regime | method | " + " | ".join(NUMERICAL_CASES) + " |",
        "|---|---|" + "---|" * len(NUMERICAL_CASES),
    ]
    for regime in regimes:
        for name, spec in NUMERICAL.items():
            if REGIMES[regime][2] and spec.needs_exact:
                continue  # tests need the exact sample; the large regime is sketched
            cells = []
            for case in NUMERICAL_CASES:
                r = study(case, regime=regime, reps=reps, seed=seed, numerical_method=name)
                cells.append(f"{r.fpr:.4f}" if r.power is None else f"{r.power:.3f}")
            lines.append(f"| {regime} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--correction", default="bonferroni")
    parser.add_argument("--regime", choices=[*REGIMES, "all"], default="all")
    parser.add_argument(
        "--compare-numerical",
        action="store_true",
        help="instead: power of each numerical method on the numerical cases",
    )
    args = parser.parse_args(argv)
    regimes = list(REGIMES) if args.regime == "all" else [args.regime]
    start = time.perf_counter()
    if args.compare_numerical:
        print(compare_numerical(reps=args.reps, seed=args.seed, regimes=regimes))
        return 0
    results = [
        study(case, regime=regime, reps=args.reps, seed=args.seed, correction=args.correction)
        for regime in regimes
        for case in CASES
    ]
    print(table(results))
    print(
        f"\n{args.reps} repetitions per row, seed {args.seed}, correction {args.correction}, "
        f"{time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
