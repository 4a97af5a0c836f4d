"""Evidently's data drift preset on the benchmark data (runs in bench/.venvs/evidently).

Timed end to end like ours: read both Parquet files (pandas), run
``Report([DataDriftPreset()])`` and serialise the result. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

from _measure import Phases, current_rss_mib, emit, peak_rss_mib

T_IMPORT = time.perf_counter()
import evidently  # noqa: E402
import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T_IMPORT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    args = parser.parse_args()
    phases = Phases()
    phases.seconds["import"] = IMPORT_SECONDS
    rss_after_import = current_rss_mib()
    ref = phases.run("load_reference", lambda: pd.read_parquet(args.reference))
    cur = phases.run("load_current", lambda: pd.read_parquet(args.current))
    numerical = [c for c in ref.columns if str(ref[c].dtype).startswith("float")]
    categorical = [c for c in ref.columns if c not in numerical]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)

    def compute() -> dict[str, object]:
        report = Report([DataDriftPreset()])
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        out = snapshot.dict()
        json.dumps(out, default=str)
        return dict(out)

    result = phases.run("compute", compute)
    drifted: dict[str, bool] = {}
    methods: dict[str, str] = {}
    for m in result["metrics"]:  # type: ignore[union-attr]
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            drifted[cfg["column"]] = float(m["value"]) >= float(cfg["threshold"])
            methods[cfg["column"]] = cfg["method"]
    emit(
        {
            "tool": "evidently",
            "version": evidently.__version__,
            "setup": "Report([DataDriftPreset()]) defaults",
            "seconds": phases.seconds,
            "cpu_seconds": phases.cpu_seconds,
            **phases.total(),
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_import_mib": rss_after_import,
            "drifted": sorted(k for k, v in drifted.items() if v),
            "methods": sorted(set(methods.values())),
        }
    )


if __name__ == "__main__":
    main()
