"""The statistical quality study (bench/quality.py): false-positive rate under no shift."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "quality.py"


def load_quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_study_runs_and_reports_every_case() -> None:
    quality = load_quality()
    result = quality.study("mean_shift", regime="small", reps=3)
    assert result.reps == 3
    assert result.methods == ("ks",)
    assert 0.0 <= result.power <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["small", "large"])
def test_no_shift_false_positive_rate_within_nominal_level(regime: str) -> None:
    # 200 seeded repetitions of 9 unshifted features with the defaults (auto, Bonferroni,
    # alpha 0.05). Bonferroni bounds the family-wise error rate by alpha; distances on
    # large samples should essentially never fire without a shift.
    quality = load_quality()
    result = quality.study("no_shift", regime=regime, reps=200)
    assert result.fwer <= 0.05
    assert result.fpr <= 0.05 / 9
    assert result.dataset_drift == 0.0


@pytest.mark.slow
def test_small_windows_against_a_sketched_profile_stay_quiet() -> None:
    # 500-row windows against a saved 20,000-row profile: auto picks Wasserstein with its
    # noise-floor threshold (~1% exceedance each); a fixed 0.1 would flag ~5% per feature.
    quality = load_quality()
    result = quality.study("no_shift", regime="small_window", reps=200)
    assert result.fpr <= 0.02
    assert result.dataset_drift == 0.0
