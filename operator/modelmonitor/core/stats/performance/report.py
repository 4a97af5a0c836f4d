"""Model performance of a window against its reference: realized when the window has
labels, estimated (CBPE) from calibrated probabilities when it has not, and concept drift
when the two disagree.

Concept drift: the estimate's interval is where the realized value should fall if the
reference's calibration still holds (:mod:`.cbpe`). So on the rows that have labels, a
realized value outside the estimate's interval at level ``alpha / m`` (Bonferroni over
the ``m`` metrics compared; ``alpha = 1 - confidence``) means the relation between scores
and labels changed: P(y | scores) moved, which no input drift test can see. The estimate
compared is recomputed on the labelled rows, so partly labelled windows (late labels)
compare like with like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelmonitor.core.dataset import CategoricalColumn
from modelmonitor.core.stats.label_encoding import (
    encode_labels,
    json_label,
    labels_array,
    missing_mask,
)
from modelmonitor.core.stats.performance.auc import macro_auc_value, sort_order
from modelmonitor.core.stats.performance.calibration import (
    SMALL_REFERENCE,
    CalibrationCheck,
    Calibrator,
    check_calibration,
)
from modelmonitor.core.stats.performance.cbpe import estimate_classification
from modelmonitor.core.stats.performance.intervals import Estimate, around, z_value
from modelmonitor.core.stats.performance.realized import (
    realized_classification,
    realized_regression,
)

Array = npt.NDArray[np.float64]
LabelArray = npt.ArrayLike | CategoricalColumn

#: Fewer labelled rows than this in the window: concept drift is not checked.
MIN_LABELLED_ROWS = 30

REGRESSION_NOT_ESTIMATED = (
    "estimated performance is not supported for regression: a regressor gives a point, "
    "not a distribution of the target, so there is no expected error to compute without "
    "a second model of the errors (NannyML's DLE fits one, a gradient-boosted model whose "
    "own errors are unchecked); realized performance needs the target column"
)


@dataclass(frozen=True)
class PerformanceReport:
    """Reference, estimated and realized performance of one window, and concept drift."""

    task: Literal["binary", "multiclass", "regression"]
    rows: int
    labelled_rows: int
    confidence: float
    reference: dict[str, float | None]
    estimated: dict[str, Estimate] | None
    realized: dict[str, Estimate] | None
    concept_drift: bool
    concept_drift_metrics: tuple[str, ...] = ()
    calibration: CalibrationCheck | None = None
    labels: tuple[str | float, ...] = ()
    positive_label: str | float | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "confidence": self.confidence,
            "labels": list(self.labels),
            "positive_label": self.positive_label,
            "reference": dict(self.reference),
            "estimated": None
            if self.estimated is None
            else {m: e.to_dict() for m, e in self.estimated.items()},
        }
        if self.realized is not None:
            out["realized"] = {m: e.to_dict() for m, e in self.realized.items()}
        out["concept_drift"] = self.concept_drift
        out["concept_drift_metrics"] = list(self.concept_drift_metrics)
        out["calibration"] = None if self.calibration is None else self.calibration.to_dict()
        out["notes"] = list(self.notes)
        return out


# --- classification -----------------------------------------------------------------------


def _scores(prob: Array, k: int, pos: int) -> Array:
    """The (n, k) score matrix: a 1-D input is the positive class's probability."""
    if prob.ndim == 2:
        return prob
    out = np.empty((prob.size, 2))
    out[:, pos] = prob
    out[:, 1 - pos] = 1.0 - prob
    return out


def _predicted(scores: Array, pos: int | None, columns: int) -> npt.NDArray[np.intp]:
    """The predicted class, as model quality picks it: from one probability column, the
    positive class when it is >= 0.5; from one column per class, the top one."""
    if pos is not None and columns == 1:
        return np.where(scores[:, pos] >= 0.5, pos, 1 - pos).astype(np.intp)
    return np.asarray(scores.argmax(axis=1), dtype=np.intp)


def _rows_ok(prob: Array, pred: np.ndarray | None) -> npt.NDArray[np.bool_]:
    bad = ~np.isfinite(prob)
    ok = ~(bad if prob.ndim == 1 else bad.any(axis=1))
    if pred is not None:
        ok &= ~missing_mask(pred)
    return np.asarray(ok, dtype=bool)


def _classes(reference_y: np.ndarray, labels: Sequence[str | float] | None) -> np.ndarray:
    if labels is not None:
        return np.asarray(list(labels))
    if reference_y.dtype.kind in "biuf":
        return np.unique(reference_y.astype(np.float64))
    return np.unique(reference_y.astype(str))


def _by_score(pos: int | None, scores: Array, *rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """``scores`` (n, k) and the ``rows`` aligned with it, reordered by the positive class's
    score (binary; more classes: unchanged).

    Every binary metric is a sum over rows, so the order changes nothing but rounding, and
    in score order the calibration map, the ranks of ROC AUC and DeLong's placements need
    no sort of their own: one sort serves them all (:func:`.auc.sort_order`).
    """
    order = None if pos is None else sort_order(scores[:, pos])
    if order is None:
        return (scores, *rows)
    # np.take: a fancy index of the rows of a 2-D array is several times slower
    return tuple(np.take(a, order, axis=0) for a in (scores, *rows))


def _check_rows(what: str, a: np.ndarray | None, n: int) -> None:
    if a is not None and a.shape[0] != n:
        raise ValueError(f"{what} have {a.shape[0]} rows, expected {n}")


@dataclass(frozen=True)
class ClassificationReference:
    """What the reference contributes, computed once: its classes, its own performance,
    the calibration map and the calibration check. :meth:`evaluate` then costs
    O(window)."""

    classes: np.ndarray
    columns: int
    """Probability columns expected: 1 (the positive class's) or one per class."""
    calibrator: Calibrator
    calibration: CalibrationCheck
    reference: dict[str, float | None]
    confidence: float
    notes: tuple[str, ...]
    rows: int = 0
    """Reference rows the calibration was fitted on."""

    @property
    def k(self) -> int:
        return int(self.classes.size)

    @property
    def pos(self) -> int | None:
        """The positive class (binary: the last in order), None for more classes."""
        return self.k - 1 if self.k == 2 else None

    @classmethod
    def fit(
        cls,
        reference_y: LabelArray,
        reference_proba: npt.ArrayLike,
        *,
        reference_pred: LabelArray | None = None,
        labels: Sequence[str | float] | None = None,
        confidence: float = 0.95,
    ) -> ClassificationReference:
        """Fit on the reference's labels, scores and (optional) predicted classes.

        The classes are ``labels`` or the sorted labels of the reference; the binary
        positive class is the last of them.
        """
        z = z_value(confidence)
        ry = labels_array(reference_y).ravel()
        rp = np.asarray(reference_proba, dtype=np.float64)
        rpred = None if reference_pred is None else labels_array(reference_pred).ravel()
        if rp.ndim not in (1, 2):
            raise ValueError("probabilities must be 1-D (binary) or 2-D (n, classes)")
        _check_rows("reference probabilities", rp, ry.size)
        _check_rows("reference predictions", rpred, ry.size)
        notes: list[str] = []
        keep = _rows_ok(rp, rpred) & ~missing_mask(ry)
        dropped = int(ry.size - np.count_nonzero(keep))
        if dropped:
            notes.append(
                f"reference: {dropped} row(s) with a missing label, score or prediction ignored"
            )
        ry, rp = ry[keep], rp[keep]
        rpred = None if rpred is None else rpred[keep]
        if ry.size == 0:
            raise ValueError("the reference has no row with a label and scores")
        classes = _classes(ry, labels)
        k = classes.size
        if k < 2:
            raise ValueError("classification needs at least two classes in the reference's labels")
        if rp.ndim == 2 and rp.shape[1] != k:
            raise ValueError(
                f"{rp.shape[1]} probability column(s) for {k} classes {classes.tolist()}"
            )
        if rp.ndim == 1 and k != 2:
            raise ValueError("one probability column is the positive class of a binary task")
        pos = k - 1 if k == 2 else None
        rt = encode_labels(ry, classes, "reference labels")
        rs = _scores(rp, k, k - 1)
        rpi = (
            _predicted(rs, pos, 1 if rp.ndim == 1 else k)
            if rpred is None
            else encode_labels(rpred, classes, "reference predictions")
        )
        check = check_calibration(rt, rs, pos)  # before the reordering: it samples rows
        rs, rt, rpi = _by_score(pos, rs, rt, rpi)
        # the reference's own values only: its intervals (DeLong's influences) go unused
        metrics, _ = realized_classification(rt, rpi, None, pos, z, k=k)
        reference: dict[str, float | None] = {m: e.value for m, e in metrics.items()}
        reference["roc_auc"] = macro_auc_value(rt, rs, pos)
        if check.warning:
            notes.append(check.warning)
        if ry.size < SMALL_REFERENCE:
            notes.append(
                f"the calibration is fitted on {ry.size} reference row(s), fewer than "
                f"{SMALL_REFERENCE}: the estimates' intervals do not count its error, which "
                "is not small then"
            )
        return cls(
            classes=classes,
            columns=1 if rp.ndim == 1 else k,
            calibrator=Calibrator.fit(rt, rs, pos),
            calibration=check,
            reference=reference,
            confidence=confidence,
            notes=tuple(notes),
            rows=int(ry.size),
        )

    def _estimate(
        self, calibrated: Array, scores: Array, p_idx: npt.NDArray[np.intp], z: float
    ) -> tuple[dict[str, Estimate], list[int]]:
        """The estimates, their spread widened by the calibration map's own error.

        The map is learnt from the reference's labels, so its error in an expected rate
        is about the rate's sampling error over the reference's rows: the variance grows
        by the factor ``1 + n / n_reference`` (negligible for a reference much larger
        than the window, 10% for one ten times larger).
        """
        est, skipped = estimate_classification(calibrated, scores, p_idx, self.pos, z)
        grow = math.sqrt(1.0 + p_idx.size / max(self.rows, 1))
        return {
            m: e if e.value is None or e.std is None else around(e.value, e.std * grow, z)
            for m, e in est.items()
        }, skipped

    def evaluate(
        self,
        current_proba: npt.ArrayLike,
        *,
        current_pred: LabelArray | None = None,
        current_y: LabelArray | None = None,
    ) -> PerformanceReport:
        """Estimated and (with ``current_y``) realized performance of a window, and concept
        drift. ``current_y`` may have missing values: rows whose label has not arrived."""
        z = z_value(self.confidence)
        k, pos, classes = self.k, self.pos, self.classes
        notes = list(self.notes)
        cp = np.asarray(current_proba, dtype=np.float64)
        if (
            (cp.ndim == 1 and self.columns != 1)
            or (cp.ndim == 2 and cp.shape[1] != self.columns)
            or cp.ndim not in (1, 2)
        ):
            raise ValueError(
                f"reference and current probabilities must have the same columns ({self.columns})"
            )
        cpred = None if current_pred is None else labels_array(current_pred).ravel()
        cy = None if current_y is None else labels_array(current_y).ravel()
        _check_rows("current predictions", cpred, cp.shape[0])
        _check_rows("current labels", cy, cp.shape[0])
        ckeep = _rows_ok(cp, cpred)
        cdropped = int(cp.shape[0] - np.count_nonzero(ckeep))
        if cdropped:
            notes.append(f"current: {cdropped} row(s) with a missing score or prediction ignored")
        cp = cp[ckeep]
        cpred = None if cpred is None else cpred[ckeep]
        cy = None if cy is None else cy[ckeep]
        if cp.shape[0] == 0:
            raise ValueError("the current window has no row with scores")
        cs = _scores(cp, k, k - 1)
        cpi = (
            _predicted(cs, pos, self.columns)
            if cpred is None
            else encode_labels(cpred, classes, "current predictions")
        )
        if cy is None:
            cs, cpi = _by_score(pos, cs, cpi)
        else:
            cs, cpi, cy = _by_score(pos, cs, cpi, cy)
        calibrated = self.calibrator(cs)
        estimated, skipped = self._estimate(calibrated, cs, cpi, z)
        if skipped:
            notes.append(
                "estimated roc_auc leaves out class(es) the window is expected to hold less "
                "than one row of (or all but one)"
            )

        realized: dict[str, Estimate] | None = None
        n_labelled = 0
        drift_metrics: tuple[str, ...] = ()
        if cy is not None:
            labelled = ~missing_mask(cy)
            n_labelled = int(np.count_nonzero(labelled))
            if n_labelled < cy.size:
                notes.append(
                    f"current: {cy.size - n_labelled} row(s) without a label yet (estimated only)"
                )
            if n_labelled == 0:
                notes.append("current: no row has a label: realized performance not computed")
            else:
                ct = encode_labels(cy[labelled], classes, "current labels")
                realized, rskip = realized_classification(ct, cpi[labelled], cs[labelled], pos, z)
                if rskip:
                    names = ", ".join(str(json_label(classes[c])) for c in rskip)
                    notes.append(
                        f"realized roc_auc leaves out class(es) absent from the labels: {names}"
                    )
                if n_labelled < MIN_LABELLED_ROWS:
                    notes.append(
                        f"concept drift not checked: {n_labelled} labelled row(s), fewer than "
                        f"{MIN_LABELLED_ROWS}"
                    )
                else:
                    on_labelled = estimated
                    if n_labelled < cy.size:
                        on_labelled, _ = self._estimate(
                            calibrated[labelled], cs[labelled], cpi[labelled], z
                        )
                    drift_metrics = disagreeing(on_labelled, realized, self.confidence)
        return PerformanceReport(
            task="binary" if pos is not None else "multiclass",
            rows=int(cp.shape[0]),
            labelled_rows=n_labelled,
            confidence=self.confidence,
            reference=dict(self.reference),
            estimated=estimated,
            realized=realized,
            concept_drift=bool(drift_metrics),
            concept_drift_metrics=drift_metrics,
            calibration=self.calibration,
            labels=tuple(json_label(c) for c in classes),
            positive_label=None if pos is None else json_label(classes[pos]),
            notes=tuple(notes),
        )


def classification_performance(
    reference_y: LabelArray,
    reference_proba: npt.ArrayLike,
    current_proba: npt.ArrayLike,
    *,
    reference_pred: LabelArray | None = None,
    current_pred: LabelArray | None = None,
    current_y: LabelArray | None = None,
    labels: Sequence[str | float] | None = None,
    confidence: float = 0.95,
) -> PerformanceReport:
    """Reference, estimated and (with ``current_y``) realized performance, concept drift:
    :meth:`ClassificationReference.fit` then :meth:`~ClassificationReference.evaluate`.

    ``*_proba``: the positive class's probability (1-D, binary; the positive class is the
    last class in order) or an (n, k) matrix whose columns follow the class order (the
    sorted labels of the reference, or ``labels``). Without ``*_pred`` the predicted class
    is the top one (binary: probability >= 0.5). ``current_y`` may have missing values:
    those rows are unlabelled (labels arrive late), estimated but not realized.
    """
    ref = ClassificationReference.fit(
        reference_y,
        reference_proba,
        reference_pred=reference_pred,
        labels=labels,
        confidence=confidence,
    )
    return ref.evaluate(current_proba, current_pred=current_pred, current_y=current_y)


def disagreeing(
    estimated: dict[str, Estimate], realized: dict[str, Estimate], confidence: float
) -> tuple[str, ...]:
    """The metrics whose realized value lies outside the estimate's interval at level
    ``(1 - confidence) / m``, ``m`` the metrics with both values (Bonferroni)."""
    both = [
        m
        for m, e in estimated.items()
        if m in realized
        and e.value is not None
        and e.std is not None
        and math.isfinite(e.std)
        and realized[m].value is not None
    ]
    if not both:
        return ()
    z = z_value(1.0 - (1.0 - confidence) / len(both))
    out = []
    for m in both:
        e, r = estimated[m], realized[m].value
        assert e.value is not None
        assert e.std is not None
        assert r is not None
        if abs(r - e.value) > z * e.std + 1e-12:
            out.append(m)
    return tuple(out)


CLASSIFICATION_NOT_ESTIMATED = (
    "estimated performance needs the model's class probabilities (--proba): predicted "
    "classes alone say nothing about how sure the model was"
)


def labelled_classification_performance(
    reference_y: LabelArray,
    reference_pred: LabelArray,
    current_pred: LabelArray,
    current_y: LabelArray,
    *,
    labels: Sequence[str | float] | None = None,
    confidence: float = 0.95,
) -> PerformanceReport:
    """Reference and realized accuracy, precision, recall and F1 with intervals, from
    predicted classes only (no probabilities: no ROC AUC and no estimate)."""
    z = z_value(confidence)
    arrays = [
        labels_array(a).ravel() for a in (reference_y, reference_pred, current_pred, current_y)
    ]
    ry, rpred, cpred, cy = arrays
    _check_rows("reference predictions", rpred, ry.size)
    _check_rows("current labels", cy, cpred.size)
    rkeep = ~(missing_mask(ry) | missing_mask(rpred))
    ckeep = ~(missing_mask(cy) | missing_mask(cpred))
    if not rkeep.any():
        raise ValueError("the reference has no row with a label and a prediction")
    text = any(a.dtype.kind not in "biuf" for a in arrays)
    seen = [a[m] for a, m in ((ry, rkeep), (rpred, rkeep), (cpred, ckeep), (cy, ckeep))]
    if labels is not None:
        classes = np.asarray(list(labels))
    else:
        classes = np.unique(
            np.concatenate([a.astype(str) if text else a.astype(np.float64) for a in seen])
        )
    k = classes.size
    if k < 2:
        raise ValueError("classification needs at least two classes")
    pos = k - 1 if k == 2 else None
    enc = [
        encode_labels(a, classes, what)
        for a, what in zip(seen, ("labels", "predictions") * 2, strict=True)
    ]
    ref_metrics, _ = realized_classification(enc[0], enc[1], None, pos, z, k=k)
    n_labelled = int(np.count_nonzero(ckeep))
    realized = None
    if n_labelled:
        realized, _ = realized_classification(enc[3], enc[2], None, pos, z, k=k)
    return PerformanceReport(
        task="binary" if pos is not None else "multiclass",
        rows=int(cpred.size - np.count_nonzero(missing_mask(cpred))),
        labelled_rows=n_labelled,
        confidence=confidence,
        reference={m: e.value for m, e in ref_metrics.items()},
        estimated=None,
        realized=realized,
        concept_drift=False,
        labels=tuple(json_label(c) for c in classes),
        positive_label=None if pos is None else json_label(classes[pos]),
        notes=(CLASSIFICATION_NOT_ESTIMATED,),
    )


# --- regression ---------------------------------------------------------------------------


def regression_performance(
    reference_y: npt.ArrayLike,
    reference_pred: npt.ArrayLike,
    current_pred: npt.ArrayLike,
    *,
    current_y: npt.ArrayLike | None = None,
    confidence: float = 0.95,
) -> PerformanceReport:
    """Reference and (with ``current_y``) realized MAE, RMSE and MAPE with intervals; no
    estimate (:data:`REGRESSION_NOT_ESTIMATED`)."""
    z = z_value(confidence)
    ry = np.asarray(reference_y, dtype=np.float64).ravel()
    rp = np.asarray(reference_pred, dtype=np.float64).ravel()
    cp = np.asarray(current_pred, dtype=np.float64).ravel()
    if ry.size != rp.size:
        raise ValueError(f"reference predictions have {rp.size} rows, labels {ry.size}")
    ok = np.isfinite(ry) & np.isfinite(rp)
    if not ok.any():
        raise ValueError("the reference has no row with a finite target and prediction")
    reference = {m: e.value for m, e in realized_regression(ry[ok], rp[ok], z).items()}
    notes = [REGRESSION_NOT_ESTIMATED]
    realized = None
    n_labelled = 0
    if current_y is not None:
        cy = np.asarray(current_y, dtype=np.float64).ravel()
        if cy.size != cp.size:
            raise ValueError(f"current predictions have {cp.size} rows, labels {cy.size}")
        cok = np.isfinite(cy) & np.isfinite(cp)
        n_labelled = int(np.count_nonzero(cok))
        if n_labelled:
            realized = realized_regression(cy[cok], cp[cok], z)
    return PerformanceReport(
        task="regression",
        rows=int(np.count_nonzero(np.isfinite(cp))),
        labelled_rows=n_labelled,
        confidence=confidence,
        reference=reference,
        estimated=None,
        realized=realized,
        concept_drift=False,
        notes=tuple(notes),
    )
