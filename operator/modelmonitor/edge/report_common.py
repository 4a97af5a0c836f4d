"""What every format of the ``check`` report shares: feature order, numbers, verdict.

Drifted features come first (what a reader acts on), then the evaluated ones, then
those that could not be evaluated; the file's order is kept within each group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Feature rows a markdown or HTML report lists; the JSON output has them all.
MAX_FEATURE_ROWS = 200
#: Data-quality issue rows a markdown or HTML report lists.
MAX_ISSUE_ROWS = 200


def drifted_first(features: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Drifted, then evaluated, then not evaluated; stable within each group."""

    def rank(f: Mapping[str, Any]) -> int:
        if f.get("drifted"):
            return 0
        return 1 if f.get("status", "ok") == "ok" else 2

    return sorted(features, key=rank)


def fmt_num(v: Any) -> str:
    """A number for a report cell: 4 decimals, or scientific when tiny or huge."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def fmt_share(v: Any) -> str:
    """A share (0-1) as a percentage, '-' when absent."""
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{float(v):.1%}"


def p_value_text(f: Mapping[str, Any]) -> str:
    """The p-value, with the corrected one when a correction changed it."""
    p = f.get("p_value")
    text = fmt_num(p)
    if p is not None and f.get("p_value_adjusted") is not None:
        text += f" (adj {fmt_num(f['p_value_adjusted'])})"
    return text


def drifted_text(f: Mapping[str, Any]) -> str:
    """'YES', 'no', or why the feature was not evaluated."""
    if f.get("status", "ok") != "ok":
        return f"- ({f['status']})"
    return "YES" if f.get("drifted") else "no"


def verdict_line(result: Mapping[str, Any]) -> str:
    """The one-sentence summary of the data set's drift."""
    ds = result["dataset"]
    verdict = "DRIFT DETECTED" if ds["drifted"] else "no dataset drift"
    return (
        f"{verdict} - {ds['drifted_features']} of {ds['total_features']} features drifted "
        f"({ds['share']:.1%}; dataset drift at >= {ds['drift_share']:.0%})"
    )


def decision_rules(result: Mapping[str, Any]) -> str:
    """What decided drift, per method used (the report's ``thresholds``), in one line."""
    rules = [str(t["rule"]) for t in result.get("thresholds", [])]
    return "; ".join(rules) or "no feature evaluated"


def interval_text(e: Mapping[str, Any] | None) -> str:
    """``0.8123 [0.7900, 0.8340]`` for an estimate, '-' when absent."""
    if not e or e.get("value") is None:
        return "-"
    if e.get("lower") is None or e.get("upper") is None:
        return fmt_num(e["value"])
    return f"{fmt_num(e['value'])} [{fmt_num(e['lower'])}, {fmt_num(e['upper'])}]"


PERFORMANCE_HEADER = ("metric", "reference", "estimated", "realized")


def performance_title(perf: Mapping[str, Any]) -> str:
    """``Performance (binary, 1,000 rows, 600 labelled; 95% intervals)``."""
    return (
        f"Performance ({perf['task']}, {perf['rows']:,} rows, {perf['labelled_rows']:,} "
        f"labelled; {perf['confidence']:.0%} intervals)"
    )


def performance_rows(perf: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per metric: name, reference value, estimate and realized with intervals."""
    estimated = perf.get("estimated") or {}
    realized = perf.get("realized") or {}
    names = list(dict.fromkeys([*perf["reference"], *estimated, *realized]))
    return [
        (
            str(m),
            fmt_num(perf["reference"].get(m)),
            interval_text(estimated.get(m)),
            interval_text(realized.get(m)),
        )
        for m in names
    ]


def concept_drift_text(perf: Mapping[str, Any]) -> str:
    """``Concept drift: YES (accuracy, f1)``, ``no``, or why it was not checked."""
    if perf["concept_drift"]:
        return f"Concept drift: YES ({', '.join(perf.get('concept_drift_metrics', []))})"
    if perf.get("estimated") is None:
        return "Concept drift: not checked (no estimate; the notes say why)"
    if "realized" not in perf:
        return "Concept drift: not checked (no labels in the current window)"
    return "Concept drift: no"
