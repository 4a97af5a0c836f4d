"""The iris data the e2e tests and the demo monitor with: the reference with the model's
expected answers, and a probe set whose petal_length has moved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "docs" / "examples" / "data" / "iris-reference.csv"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = {"setosa": 0, "versicolor": 1, "virginica": 2}


def reference_csv() -> str:
    """The iris features with the model's expected answer (the class index) as prediction."""
    lines = IRIS.read_text().splitlines()
    out = [",".join([*FEATURES, "prediction"])]
    for line in lines[1:]:
        *values, species = line.split(",")
        out.append(",".join([*values, str(SPECIES[species])]))
    return "\n".join(out) + "\n"


def drifted_rows(seed: int = 3) -> list[dict[str, float]]:
    """Every other iris row with petal_length moved up by 2.5 cm (plus a little noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for line in IRIS.read_text().splitlines()[1:]:
        values = [float(v) for v in line.split(",")[:4]]
        values[2] += 2.5 + rng.normal(0, 0.1)
        rows.append(dict(zip(FEATURES, values, strict=True)))
    return rows[::2]
