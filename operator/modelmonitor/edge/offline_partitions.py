"""``modelmonitor check --current DIR|GLOB|s3://bucket/prefix/``: a partitioned window, streamed.

The files are listed (:func:`~modelmonitor.adapters.files.partitions.resolve_partitions`),
read one chunk at a time with the size caps applied to each file, and folded into one
merged profile (:func:`~modelmonitor.core.stats.partitions.profile_stream`), which is
checked against the reference like a window of rows (docs/cli.md, "Partitioned current
windows").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from modelmonitor.adapters.files import DataError, ReadLimits
from modelmonitor.adapters.files.partitions import (
    iter_partitions,
    present_features,
    resolve_partitions,
)
from modelmonitor.core.dataset import Feature
from modelmonitor.core.spec.model import PartitionsSpec
from modelmonitor.core.stats.partitions import ProfileSchema, profile_stream
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality_window import window_quality
from modelmonitor.edge.labels import LabelSpec, apply_types, column_types, parse_columns
from modelmonitor.edge.offline import (
    UsageError,
    _add_decision_rules,
    _emit,
    analyze_with_flags,
    load_reference,
)
from modelmonitor.edge.offline_objects import is_object_prefix, read_object_window


def engine_arguments(args: argparse.Namespace) -> tuple[str, str | None, int]:
    """``--engine``, ``--scheduler`` and ``--workers``, checked together."""
    engine = str(getattr(args, "engine", "stream"))
    scheduler = getattr(args, "scheduler", None)
    workers = int(getattr(args, "workers", 2))
    if engine == "dask" and not scheduler:
        raise UsageError("--engine dask needs --scheduler tcp://host:port")
    if engine != "dask" and scheduler:
        raise UsageError("--scheduler is the address of --engine dask's cluster")
    if engine == "dask-local" and not 1 <= workers <= 256:
        raise UsageError(f"--workers must lie in [1, 256], got {workers}")
    if engine != "stream":
        from modelmonitor.adapters import dask_engine

        if not dask_engine.available():
            raise UsageError(
                f"--engine {engine} needs the dask extra: pip install 'modelmonitor[dask]'"
            )
        if scheduler:
            try:
                dask_engine.parse_scheduler(scheduler)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
    return engine, scheduler, workers


def _profile(
    args: argparse.Namespace, paths: list[Path], schema: ProfileSchema, limits: ReadLimits
) -> tuple[ReferenceProfile, int]:
    """The window's merged profile, and how many engine workers made it (0: this process)."""
    engine, scheduler, workers = engine_arguments(args)
    if engine == "stream":
        return profile_stream(iter_partitions(paths, schema.features, limits=limits), schema), 0
    from modelmonitor.adapters import dask_engine

    cluster = dask_engine.connect(scheduler) if scheduler else dask_engine.local_cluster(workers)
    try:
        with cluster as client:
            run = dask_engine.profile_on_dask(client, paths, schema, limits)
    except dask_engine.EngineError as exc:
        raise UsageError(str(exc)) from None
    return run.profile, run.workers


def check_partitioned(
    args: argparse.Namespace,
    method: str,
    features: list[Feature] | None,
    labels: LabelSpec | None,
    limits: ReadLimits,
    started: float,
) -> int:
    """``check`` of a partitioned current window: streamed into one merged profile.

    Memory holds one chunk of one file and the running profile, whatever the number of
    files; each file is held to the size caps before it is decoded.
    """
    if labels is not None:
        raise UsageError(
            "--target/--prediction/--proba need the rows of one current file; a partitioned "
            "window is summarised, not held (check model quality on one partition)"
        )
    if args.format in ("markdown", "html"):
        raise UsageError(
            f"--format {args.format} draws the current rows; a partitioned window has only "
            "its profile: use --format table or json"
        )
    engine_arguments(args)  # before any file is read
    types = column_types(None, features, getattr(args, "categorical", None))
    if features is not None:
        features = apply_types(features, types)
    reference = load_reference(
        Path(args.reference),
        features,
        method=method,
        limits=limits,
        types=types,
        required=parse_columns(getattr(args, "categorical", None)),
    )
    if is_object_prefix(args.current):
        if getattr(args, "engine", "stream") != "stream":
            raise UsageError(
                "--engine reads files on its workers; an s3:// prefix is streamed by this "
                "process (leave --engine out)"
            )
        window, count = read_object_window(
            args.current,
            reference.features,
            limits,
            endpoint=getattr(args, "endpoint_url", None),
            max_objects=getattr(args, "max_objects", PartitionsSpec.max_objects),
        )
        schema = ProfileSchema(tuple(f for f in reference.features if f.name in window.columns))
        workers = 0
    else:
        paths = resolve_partitions(args.current)
        present = present_features(paths, reference.features)
        if not present:
            shown = ", ".join(f.name for f in reference.features[:8])
            raise DataError(paths[0], f"has none of the reference's features ({shown})")
        schema = ProfileSchema(tuple(present))
        window, workers = _profile(args, paths, schema, limits)
        count = len(paths)
    report = analyze_with_flags(args, reference, window, method)
    quality = window_quality(window, reference.data, features=reference.features)
    result = report.to_dict()
    result["data_quality"] = quality.to_dict()
    result["reference"] = {
        "path": str(reference.path),
        "kind": reference.kind,
        "rows": reference.rows,
    }
    result["current"] = {
        "path": str(args.current),
        "rows": window.n_rows,
        "partitions": count,
        "rank_error": schema.rank_epsilon,
        "engine": getattr(args, "engine", "stream"),
    }
    if workers:
        result["current"]["workers"] = workers
    _add_decision_rules(result, report, method, args.threshold)
    if any(f.approximate for f in report.features):
        result["notes"].append(
            "statistics marked approximate (~ in the table) were read from the window's sketches "
            f"(rank error {schema.rank_epsilon:.2%}; docs/statistics.md)"
        )
    result["elapsed_seconds"] = round(time.perf_counter() - started, 4)
    return _emit(args, result)
