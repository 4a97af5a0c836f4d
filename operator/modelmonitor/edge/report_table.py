"""The ``check`` report for a terminal: verdict, the rule per method, a row per feature.

Drifted features first (as in markdown and HTML); then data quality, model quality and
the report's notes.
"""

from __future__ import annotations

from typing import Any

from modelmonitor.edge.report_common import (
    PERFORMANCE_HEADER,
    concept_drift_text,
    decision_rules,
    drifted_first,
    performance_rows,
    performance_title,
)


def _fmt_num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def format_table(result: dict[str, Any]) -> str:
    """The report for a terminal: a verdict line, one row per feature, quality issues."""
    ds = result["dataset"]
    verdict = "DRIFT DETECTED" if ds["drifted"] else "no dataset drift"
    lines = [
        f"Dataset: {verdict} - {ds['drifted_features']} of {ds['total_features']} features "
        f"drifted ({ds['share']:.1%}; dataset drift at >= {ds['drift_share']:.0%})",
        f"Reference: {result['reference']['path']} ({result['reference']['rows']:,} rows, "
        f"{result['reference']['kind']})   Current: {result['current']['path']} "
        f"({result['current']['rows']:,} rows)",
        f"Drift when: {decision_rules(result)}",
        "",
    ]
    header = [
        "feature",
        "type",
        "method",
        "statistic",
        "p-value",
        "threshold",
        "drifted",
    ]
    rows = []
    for f in drifted_first(result["features"]):
        drifted = "YES" if f["drifted"] else "no"
        if f.get("status", "ok") != "ok":
            drifted = f"- ({f['status']})"
        p = f["p_value"]
        p_text = _fmt_num(p)
        if p is not None and f.get("p_value_adjusted") is not None:
            p_text += f" (adj {_fmt_num(f['p_value_adjusted'])})"
        rows.append(
            [
                f["name"],
                f["type"],
                f["method"],
                ("~" if f.get("approximate") else "") + _fmt_num(f["statistic"]),
                p_text,
                _fmt_num(f["threshold"]),
                drifted,
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    dq = result["data_quality"]
    lines.append("")
    if dq["issues"]:
        lines.append(f"Data quality: {len(dq['issues'])} issue(s)")
        name_w = max(len(i["feature"]) for i in dq["issues"])
        kind_w = max(len(i["kind"]) for i in dq["issues"])
        for i in dq["issues"]:
            lines.append(
                f"  {i['feature'].ljust(name_w)}  {i['kind'].ljust(kind_w)}  {i['message']}"
            )
    else:
        lines.append("Data quality: no issues")
    if dq["extra_columns"]:
        lines.append(f"  extra columns (not in the reference): {', '.join(dq['extra_columns'])}")
    mq = result.get("model_quality")
    if mq:
        lines.append("")
        lines.append(f"Model quality ({mq['task']}, {mq['rows']:,} rows):")
        mq_rows = [["metric", "value", "reference", "change"]]
        for m in mq["metrics"]:
            mq_rows.append(
                [
                    m["name"],
                    _fmt_num(m["value"]),
                    _fmt_num(m["reference"]),
                    _fmt_num(m["change"]),
                ]
            )
        mq_widths = [max(len(r[i]) for r in mq_rows) for i in range(4)]
        for r in mq_rows:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(r, mq_widths, strict=True)).rstrip()
            )
        for note in mq["notes"]:
            lines.append(f"  note: {note}")
    perf = result.get("performance")
    if perf:
        lines.append("")
        lines.append(performance_title(perf) + ":")
        p_rows: list[tuple[str, ...]] = [PERFORMANCE_HEADER, *performance_rows(perf)]
        p_widths = [max(len(row[i]) for row in p_rows) for i in range(4)]
        for row in p_rows:
            cells = "  ".join(c.ljust(w) for c, w in zip(row, p_widths, strict=True))
            lines.append("  " + cells.rstrip())
        lines.append("  " + concept_drift_text(perf))
        lines.extend(f"  note: {note}" for note in perf["notes"])
    if result.get("notes"):
        lines.append("")
        lines.extend(f"Note: {note}" for note in result["notes"])
    return "\n".join(lines) + "\n"
