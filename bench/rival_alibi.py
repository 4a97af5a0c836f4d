"""Alibi Detect's TabularDrift on the benchmark data (runs in bench/.venvs/alibi).

TabularDrift runs a Kolmogorov-Smirnov test per numerical feature and a chi-squared
test per categorical feature (categories as integer codes), Bonferroni-corrected. Timed
end to end: read both Parquet files (pyarrow) into one float array each, build the
detector on the reference, predict on the current window. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import time

from _measure import Phases, current_rss_mib, emit, peak_rss_mib

T_IMPORT = time.perf_counter()
import alibi_detect  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from alibi_detect.cd import TabularDrift  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T_IMPORT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    args = parser.parse_args()
    phases = Phases()
    phases.seconds["import"] = IMPORT_SECONDS
    rss_after_import = current_rss_mib()

    def load(path: str) -> tuple[list[str], list[int], np.ndarray]:
        table = pq.read_table(path)
        names = table.column_names
        cats: list[int] = []
        x = np.empty((table.num_rows, len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            col = table.column(name)
            if pa.types.is_dictionary(col.type):
                cats.append(j)
                col = col.unify_dictionaries()
                codes = pa.chunked_array([c.indices for c in col.chunks])
                x[:, j] = codes.to_numpy()
            else:
                x[:, j] = col.to_numpy()
        return names, cats, x

    names, cats, x_ref = phases.run("load_reference", lambda: load(args.reference))
    _, _, x_cur = phases.run("load_current", lambda: load(args.current))
    detector = phases.run(
        "fit",
        lambda: TabularDrift(x_ref, p_val=0.05, categories_per_feature=dict.fromkeys(cats)),
    )
    preds = phases.run(
        "predict", lambda: detector.predict(x_cur, drift_type="feature", return_p_val=True)
    )
    flags = np.asarray(preds["data"]["is_drift"]).ravel()
    emit(
        {
            "tool": "alibi-detect",
            "version": alibi_detect.__version__,
            "setup": "TabularDrift(p_val=0.05, categories_per_feature=codes), Bonferroni",
            "seconds": phases.seconds,
            "cpu_seconds": phases.cpu_seconds,
            **phases.total(),
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_import_mib": rss_after_import,
            "drifted": sorted(n for n, f in zip(names, flags, strict=True) if f),
            "methods": ["ks", "chi2"],
        }
    )


if __name__ == "__main__":
    main()
