"""The offline commands: ``modelmonitor check`` and ``modelmonitor baseline``.

``check`` compares a current data file with a reference (a data file or a profile saved
by ``baseline``): per-feature drift (:func:`modelmonitor.core.stats.drift.analyze`) and data
quality (:func:`modelmonitor.core.stats.quality.data_quality`), printed as a table or as one
JSON object (the shape docs/cli.md documents). ``baseline`` streams a data file in chunks into a
mergeable reference profile and saves it, so later checks cost O(current window).

Exit codes: 0 when the analysis ran (drift or not; 1 instead on drift with
``--fail-on-drift``, 3 when no feature could be evaluated), 2 with a one-line reason on
stderr for bad input (an input over the size caps of :mod:`.offline_inputs` too). These commands
import only the data readers and the statistics engine: never kopf or the Kubernetes
client (a unit test holds this).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from modelmonitor.adapters.files import (
    DataError,
    ReadLimits,
    is_data_file,
    iter_datasets,
    load_features_file,
    read_columns,
    read_dataset,
)
from modelmonitor.adapters.files.partitions import is_partitioned
from modelmonitor.core.dataset import CategoricalColumn, Column, Dataset, Feature, FeatureType
from modelmonitor.core.stats.column_profile import DEFAULT_EXACT_LIMIT, as_categorical
from modelmonitor.core.stats.drift import DriftReport, analyze
from modelmonitor.core.stats.methods import AUTO, REGISTRY, validate_method_name
from modelmonitor.core.stats.model_quality import (
    ModelQuality,
    classification_quality,
    regression_quality,
)
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality import DataQualityReport, data_quality
from modelmonitor.core.stats.thresholds import method_thresholds, unused_threshold_note
from modelmonitor.edge.labels import (
    LabelSpec,
    apply_types,
    column_types,
    infer_task,
    parse_columns,
    resolve_task,
    typed_columns,
)
from modelmonitor.edge.offline_inputs import check_output, limits_from, load_profile
from modelmonitor.edge.offline_performance import (
    LateLabelsError,
    PerformanceUnavailableError,
    performance,
    read_late_labels,
    reference_label_data,
)
from modelmonitor.edge.report_table import format_table

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_EVALUATED = 3

#: Methods that need the reference's exact sample: a raw reference keeps it for them.
#: A reference data file with at most this many rows keeps its exact sorted sample in the
#: profile built for ``check``: exact and reproducible results (a quantile sketch is
#: randomised), at a cost linear in the rows. Larger ones are sketched as ``baseline``
#: would, so a run stays O(current window).
EXACT_REFERENCE_MAX_ROWS = 200_000


class UsageError(Exception):
    """Bad input to a command; the message is the one line printed to stderr."""


@dataclass(frozen=True)
class Reference:
    """The reference as loaded: a profile (saved, or built here from raw data)."""

    path: Path
    kind: str  # "data" | "profile"
    data: ReferenceProfile | Dataset
    features: list[Feature]

    @property
    def rows(self) -> int:
        return self.data.n_rows


# --- check -------------------------------------------------------------------------------


def check_command(args: argparse.Namespace) -> int:
    """``modelmonitor check``: drift + data quality of ``--current`` vs ``--reference``."""
    return _run(lambda: _check(args))


def _check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    method = str(args.method)
    _validate_method(method)
    features = load_features_file(args.features_file) if args.features_file else None
    labels = _label_spec(args)
    limits = limits_from(args)
    if is_partitioned(args.current) or str(args.current).startswith("s3://"):
        from modelmonitor.edge.offline_partitions import check_partitioned

        return check_partitioned(args, method, features, labels, limits, started)
    if getattr(args, "engine", "stream") != "stream":
        raise UsageError(f"--engine {args.engine} profiles the files of a partitioned --current")
    try:
        late = read_late_labels(args, labels, limits=limits)
    except LateLabelsError as exc:
        raise UsageError(str(exc)) from None
    # with --proba (or --labels) the current window may lack the labels: performance is
    # then estimated (or joined from the late labels)
    unlabelled = (
        labels is not None
        and (bool(labels.proba) or late is not None)
        and labels.target not in {f.name for f in read_columns(Path(args.current))}
    )
    if labels is not None and labels.task == "auto":
        task = "classification" if labels.proba else None
        if task is None and late is not None:
            task = infer_task(late.data[labels.target], None, labels)
        task = task or resolve_task(Path(args.current), labels, limits=limits)
        labels = replace(labels, task=task)
    types = column_types(labels, features, getattr(args, "categorical", None))
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
    if unlabelled and labels is not None:
        # the labels are expected to be absent: no missing-column drift or quality issue;
        # a request id (--labels) is no feature either
        skip = {labels.target, *([late.id_column] if late is not None else [])}
        kept = [f for f in reference.features if f.name not in skip]
        reference = replace(reference, features=kept)
    current, extra = read_current(
        Path(args.current),
        reference.features,
        also=[c for c in labels.columns if not (unlabelled and c == labels.target)]
        + ([late.id_column] if late is not None else [])
        if labels
        else (),
        limits=limits,
    )
    joined = None
    if late is not None and labels is not None:
        current, joined = late.join(current, labels.target)
    drift_input, mismatched = _drift_view(current, reference.features)
    report = analyze_with_flags(args, reference, drift_input, method)
    quality = data_quality(current, reference.data, features=reference.features)
    known = set(quality.extra_columns)
    quality = replace(
        quality,
        extra_columns=quality.extra_columns + tuple(n for n in extra if n not in known),
    )
    result = build_result(report, quality, mismatched, reference, Path(args.current), current)
    _add_decision_rules(result, report, method, args.threshold)
    if labels is not None:
        ref_labels = reference_label_data(reference.path, reference.kind, labels, limits=limits)
        if not unlabelled or joined is not None:
            ref_quality = None if ref_labels is None else model_quality(ref_labels, labels)
            result["model_quality"] = model_quality(
                current, labels, reference=ref_quality
            ).to_dict()
        _add_performance(result, ref_labels, current, labels)
        if late is not None and joined is not None:
            result["labels"] = late.summary(joined, current.n_rows)
            if "performance" in result:
                result["performance"]["notes"] += late.notes(joined, current.n_rows)
    result["elapsed_seconds"] = round(time.perf_counter() - started, 4)
    out: TextIO = sys.stdout
    if args.format == "json":
        out.write(json.dumps(_json_safe(result), allow_nan=False) + "\n")
    elif args.format in ("markdown", "html"):
        out.write(_render(args.format, result, reference, current))
    else:
        out.write(format_table(result))
    return _exit_code(args, result)


def _emit(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """Print ``result`` as table or JSON and return the exit code."""
    out: TextIO = sys.stdout
    if args.format == "json":
        out.write(json.dumps(_json_safe(result), allow_nan=False) + "\n")
    else:
        out.write(format_table(result))
    return _exit_code(args, result)


def _exit_code(args: argparse.Namespace, result: dict[str, Any]) -> int:
    drifted = bool(result["dataset"]["drifted"])
    if not getattr(args, "fail_on_drift", False):
        return EXIT_OK
    if not any(f.get("status", "ok") == "ok" for f in result["features"]):
        print(
            "modelmonitor: error: no feature could be evaluated (see each feature's status), "
            "so drift was not checked",
            file=sys.stderr,
        )
        return EXIT_NOT_EVALUATED
    return EXIT_DRIFT if drifted else EXIT_OK


def _render(fmt: str, result: dict[str, Any], reference: Reference, current: Dataset) -> str:
    """Markdown or HTML (modelmonitor.edge.report_render); HTML needs the report extra."""
    from modelmonitor.edge.report_charts import PlottingUnavailableError
    from modelmonitor.edge.report_render import render_report

    try:
        return render_report(
            fmt,
            _json_safe(result),
            reference=reference.data,
            current=current,
            features=reference.features,
        )
    except PlottingUnavailableError as exc:
        raise UsageError(str(exc)) from None


def _validate_method(method: str) -> None:
    try:
        validate_method_name(method)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def analyze_with_flags(
    args: argparse.Namespace, reference: Reference, current: Any, method: str
) -> DriftReport:
    """``analyze`` of ``current`` (rows or a merged window profile) against the reference,
    with the command's threshold, alpha, correction and drift-share flags."""
    try:
        return analyze(
            reference.data,
            current,
            features=reference.features,
            method=method,
            methods=_methods_for(method, reference.features),
            threshold=args.threshold,
            alpha=args.alpha,
            correction=args.correction,
            drift_share=args.drift_share,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _methods_for(method: str, features: Sequence[Feature]) -> dict[str, str]:
    """``--method`` applies to every feature it fits; the others use ``auto``.

    (``ks`` fits numerical features only, ``chi2`` categorical ones; ``psi`` and
    ``jensenshannon`` fit both.) The report names the method used for each feature.
    """
    if method == AUTO:
        return {}
    fits = [f for f in features if method in REGISTRY[f.type]]
    if not fits:
        types = sorted({f.type for f in features})
        names = sorted(set().union(*(REGISTRY[t] for t in types)))
        raise UsageError(
            f"method {method!r} fits none of the features (all {'/'.join(types)}); "
            f"methods for them: {', '.join(names)}, or auto"
        )
    return {f.name: AUTO for f in features if method not in REGISTRY[f.type]}


def _needs_exact(method: str) -> bool:
    """Whether ``method`` needs the exact reference sample (the registry says so)."""
    return any(spec.needs_exact for methods in REGISTRY.values() if (spec := methods.get(method)))


def load_reference(
    path: Path,
    features: Sequence[Feature] | None,
    *,
    method: str = AUTO,
    limits: ReadLimits | None = None,
    types: Mapping[str, FeatureType] | None = None,
    required: Sequence[str] = (),
) -> Reference:
    """Read a reference data file (profiled here) or load a saved profile.

    ``types`` sets the type of the columns it names that the reference has (label
    columns, ``--categorical``); each of ``required`` must be one of them.
    """
    types = types or {}
    if is_data_file(path):
        if types:
            have = features if features is not None else read_columns(path)
            types = typed_columns(path, types, [f.name for f in have], required=required)
            features = apply_types(have, types)
        ds = read_dataset(path, features=features, limits=limits)
        feats = list(features) if features is not None else ds.inferred_features()
        if _needs_exact(method):
            # p-value methods need the exact sample: let the engine keep all of it
            return Reference(path, "data", ds, feats)
        limit = None if ds.n_rows <= EXACT_REFERENCE_MAX_ROWS else DEFAULT_EXACT_LIMIT
        profile = ReferenceProfile.from_dataset(ds, feats, exact_limit=limit)
        return Reference(path, "data", profile, feats)
    profile = load_profile(path)
    names = [f.name for f in features] if features is not None else list(profile.columns)
    types = typed_columns(path, types, names, required=required)
    for name, kind in types.items():
        if profile[name].type != kind:
            raise DataError(
                path,
                f"column {name!r} is {profile[name].type} in the profile but {kind} here "
                "(task or --categorical); build the profile with a features file that types it",
            )
    if features is None:
        return Reference(path, "profile", profile, profile.features)
    absent = [f.name for f in features if f.name not in profile]
    if absent:
        raise DataError(
            path,
            f"features file lists feature(s) not in the profile: {', '.join(map(repr, absent))}",
        )
    for f in features:
        if profile[f.name].type != f.type:
            raise DataError(
                path,
                f"feature {f.name!r} is {profile[f.name].type} in the profile but declared "
                f"{f.type} in the features file",
            )
    return Reference(path, "profile", profile, list(features))


def read_current(
    path: Path,
    features: Sequence[Feature],
    *,
    also: Sequence[str] = (),
    limits: ReadLimits | None = None,
) -> tuple[Dataset, list[str]]:
    """Read the reference's features from the current file, leniently typed.

    Returns the data (only columns the file has; missing ones are reported by drift
    and data quality) and the names of the file's extra columns. ``also`` names
    columns to read as well (labels, predictions), with inferred types; each must exist.
    """
    columns = read_columns(path)
    available = [f.name for f in columns]
    have = set(available)
    present = [f for f in features if f.name in have]
    if not present:
        shown = ", ".join(f.name for f in features[:8]) + (" ..." if len(features) > 8 else "")
        raise DataError(path, f"has none of the reference's features ({shown})")
    absent = [n for n in also if n not in have]
    if absent:
        raise DataError(path, f"has no column(s) {', '.join(map(repr, absent))} (labels)")
    wanted = {f.name for f in features}
    inferred = {f.name: f for f in columns}
    present += [inferred[n] for n in dict.fromkeys(also) if n not in wanted]
    extra = [n for n in available if n not in wanted]
    return read_dataset(path, features=present, lenient=True, limits=limits), extra


def _label_spec(args: argparse.Namespace) -> LabelSpec | None:
    target = getattr(args, "target", None)
    prediction = getattr(args, "prediction", None)
    proba = tuple(p for p in (getattr(args, "proba", None) or "").split(",") if p)
    task = getattr(args, "task", "auto") or "auto"
    if target is None:
        if prediction or proba:
            raise UsageError("--prediction and --proba need --target (the true labels)")
        return None
    if prediction is None and not proba:
        raise UsageError("--target needs --prediction or --proba")
    if task == "regression" and (proba or prediction is None):
        raise UsageError("regression needs --prediction (and no --proba)")
    return LabelSpec(target, prediction, proba, task)


def model_quality(
    data: Dataset, labels: LabelSpec, *, reference: ModelQuality | None = None
) -> ModelQuality:
    """Classification or regression metrics of ``data``'s label columns."""
    y = data[labels.target]
    pred = data[labels.prediction] if labels.prediction else None
    task = labels.task
    if task == "auto":
        task = infer_task(y, pred, labels)
    try:
        if task == "regression":
            assert pred is not None
            if isinstance(y, CategoricalColumn) or isinstance(pred, CategoricalColumn):
                raise ValueError("regression needs numerical target and prediction columns")
            return regression_quality(y, pred, reference=reference)
        if isinstance(y, CategoricalColumn) or isinstance(pred, CategoricalColumn):
            y = as_categorical(y)
            pred = None if pred is None else as_categorical(pred)
        proba: np.ndarray | None = None
        if labels.proba:
            cols: list[np.ndarray] = []
            for name in labels.proba:
                col = data[name]
                if isinstance(col, CategoricalColumn):
                    raise ValueError(f"--proba column {name!r} must be numerical")
                cols.append(col)
            proba = cols[0] if len(cols) == 1 else np.column_stack(cols)
        return classification_quality(y, pred, proba=proba, reference=reference)
    except ValueError as exc:
        raise UsageError(f"model quality: {exc}") from None


def reference_model_quality(
    reference: Reference, labels: LabelSpec, *, limits: ReadLimits | None = None
) -> ModelQuality | None:
    """The reference's own metrics when it is a data file with the label columns."""
    ds = reference_label_data(reference.path, reference.kind, labels, limits=limits)
    return None if ds is None else model_quality(ds, labels)


def _add_performance(
    result: dict[str, Any], reference: Dataset | None, current: Dataset, labels: LabelSpec
) -> None:
    """``result["performance"]`` (docs/cli.md), or a note saying why there is none."""
    task = labels.task
    if task == "auto":
        pred = current[labels.prediction] if labels.prediction else None
        task = infer_task(current[labels.target], pred, labels)
    try:
        report = performance(reference, current, labels, task)
    except PerformanceUnavailableError as exc:
        if labels.proba:  # asked for an estimate: say why there is none
            result.setdefault("notes", []).append(str(exc))
        return
    except ValueError as exc:
        raise UsageError(f"performance: {exc}") from None
    result["performance"] = report.to_dict()


def _drift_view(current: Dataset, features: Sequence[Feature]) -> tuple[Dataset, set[str]]:
    """The current data for drift: a column of the wrong type becomes all-missing.

    The engine then reports the feature as not evaluated (its data-quality entry says
    why) instead of failing the whole run.
    """
    columns: dict[str, Column] = dict(current.columns)
    mismatched: set[str] = set()
    n = current.n_rows
    for f in features:
        col = columns.get(f.name)
        if col is None:
            continue
        is_cat = isinstance(col, CategoricalColumn)
        if is_cat != (f.type == "categorical"):
            mismatched.add(f.name)
            columns[f.name] = (
                CategoricalColumn(np.full(n, -1, dtype=np.int32), ())
                if f.type == "categorical"
                else np.full(n, np.nan)
            )
    if not mismatched:
        return current, mismatched
    return Dataset(columns), mismatched


def build_result(
    report: DriftReport,
    quality: DataQualityReport,
    mismatched: set[str],
    reference: Reference,
    current_path: Path,
    current: Dataset,
) -> dict[str, Any]:
    """The JSON report: the documented shape (docs/cli.md) plus context keys."""
    result = report.to_dict()
    for fd in result["features"]:
        if fd["name"] in mismatched:
            q = quality.feature(fd["name"])
            fd["status"] = "type_mismatch"
            fd["reason"] = f"{q.reference_type} in the reference, {q.type} in the current data"
    result["data_quality"] = quality.to_dict()
    result["reference"] = {
        "path": str(reference.path),
        "kind": reference.kind,
        "rows": reference.rows,
    }
    result["current"] = {"path": str(current_path), "rows": current.n_rows}
    return result


def _add_decision_rules(
    result: dict[str, Any], report: DriftReport, method: str, threshold: float | None
) -> None:
    """Per method, what decided drift (``thresholds``), and ``notes`` on options that
    did not apply everywhere: the header never names a level no feature used."""
    result["thresholds"] = [t.to_dict(report.correction) for t in method_thresholds(report)]
    note = unused_threshold_note(report, method, threshold)
    result.setdefault("notes", []).extend([note] if note else [])


def _json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: NaN -> null, +/-inf -> +/- the largest float."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return math.copysign(sys.float_info.max, obj)
        return obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


# --- baseline -----------------------------------------------------------------------------


def baseline_command(args: argparse.Namespace) -> int:
    """``modelmonitor baseline``: stream ``--data`` into a profile saved at ``--output``."""
    return _run(lambda: _baseline(args))


def _baseline(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    data = Path(args.data)
    output = Path(args.output)
    features = load_features_file(args.features_file) if args.features_file else None
    exact_limit = getattr(args, "exact_limit", DEFAULT_EXACT_LIMIT)
    if exact_limit is not None and exact_limit < 0:
        raise UsageError("--exact-limit must be >= 0")
    check_output(output)
    profile = build_profile(
        data,
        features,
        exact_limit=exact_limit,
        chunk_rows=getattr(args, "chunk_rows", None),
        limits=limits_from(args),
    )
    try:
        profile.save(output)
    except OSError as exc:
        raise DataError(output, f"cannot write profile: {exc.strerror or exc}") from None
    size = output.stat().st_size
    print(
        f"wrote {output}: profile of {profile.n_rows:,} rows x {len(profile.columns)} features "
        f"({size / 1024:.1f} KiB) in {time.perf_counter() - started:.2f}s",
        file=sys.stderr,
    )
    return EXIT_OK


def build_profile(
    data: Path,
    features: Sequence[Feature] | None,
    *,
    exact_limit: int | None = DEFAULT_EXACT_LIMIT,
    chunk_rows: int | None = None,
    limits: ReadLimits | None = None,
) -> ReferenceProfile:
    """Stream a data file chunk by chunk into one merged profile (bounded memory)."""
    kwargs: dict[str, Any] = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
    chunks = iter_datasets(data, features=features, limits=limits, **kwargs)
    return ReferenceProfile.from_chunks(chunks, features, exact_limit=exact_limit)


# --- shared -------------------------------------------------------------------------------


def _run(action: Any) -> int:
    """Run a command; bad input becomes one line on stderr and exit code 2."""
    try:
        return int(action())
    except (DataError, UsageError) as exc:
        print(f"modelmonitor: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print(
            "modelmonitor: error: out of memory (try a smaller current window)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
