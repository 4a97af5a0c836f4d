"""The ``check`` report as GitHub-flavoured markdown (``--format markdown``).

Made to be appended to ``$GITHUB_STEP_SUMMARY``: a heading with the verdict, a table of
features (drifted first) with method, statistic, p-value or distance and threshold, the
data-quality issues, and model quality when labels were given. Pure: report dict in,
text out.

Column names, category values and paths come from the data and are not trusted: every
cell is escaped so that it stays text in its cell (``|`` and newlines cannot break the
table, ``<``/``>``/``&`` cannot open HTML, markdown punctuation cannot make a link or an
image). Tables are capped (:data:`MAX_FEATURE_ROWS`, :data:`MAX_ISSUE_ROWS`) so a wide
data set stays well under the step summary's 1 MiB; the report says what it left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelmonitor.edge.report_common import (
    MAX_FEATURE_ROWS,
    MAX_ISSUE_ROWS,
    PERFORMANCE_HEADER,
    concept_drift_text,
    decision_rules,
    drifted_first,
    drifted_text,
    fmt_num,
    fmt_share,
    p_value_text,
    performance_rows,
    performance_title,
    verdict_line,
)

#: Markdown punctuation that could make emphasis, code, a link, an image or strike-through
#: inside a cell, or end it (``|``); ``:`` so that ``https://...`` is not auto-linked.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()|~!:])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def md_escape(value: Any) -> str:
    """Text that renders as itself in a GitHub markdown table cell."""
    text = " ".join(str(value).split())  # newlines and tabs would end the row
    text = "".join(_HTML.get(c, c) for c in text)
    # after the entities: their own '&...;' holds no markdown punctuation to escape
    return _MD_SPECIAL.sub(r"\\\1", text)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one of 'l'/'r' per column."""
    sep = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(sep) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def render_markdown(result: Mapping[str, Any]) -> str:
    """The whole report as markdown (see the module docstring)."""
    ds = result["dataset"]
    icon = ":red_circle:" if ds["drifted"] else ":green_circle:"
    ref, cur = result["reference"], result["current"]
    lines = [
        f"## {icon} modelmonitor check: {md_escape(verdict_line(result))}",
        "",
        f"Reference {md_escape(ref['path'])} ({ref['rows']:,} rows, {md_escape(ref['kind'])})"
        f" - current {md_escape(cur['path'])} ({cur['rows']:,} rows) - drift when: "
        f"{md_escape(decision_rules(result))}",
        "",
        *[f"> **Note:** {md_escape(n)}\n" for n in result.get("notes", [])],
    ]
    lines += _features(result["features"])
    lines += ["", *_quality(result["data_quality"])]
    mq = result.get("model_quality")
    if mq:
        lines += ["", *_model_quality(mq)]
    perf = result.get("performance")
    if perf:
        lines += ["", *_performance(perf)]
    return "\n".join(lines) + "\n"


def _features(features: Sequence[Mapping[str, Any]]) -> list[str]:
    ordered = drifted_first(features)
    rows = [
        [
            f"**{md_escape(f['name'])}**" if f["drifted"] else md_escape(f["name"]),
            md_escape(f["type"]),
            md_escape(f["method"]),
            fmt_num(f["statistic"]),
            p_value_text(f),  # numbers and "(adj ...)": made here, not from the data
            fmt_num(f["threshold"]),
            "**yes**" if f["drifted"] else md_escape(drifted_text(f)),
        ]
        for f in ordered[:MAX_FEATURE_ROWS]
    ]
    header = ["feature", "type", "method", "statistic", "p-value", "threshold", "drifted"]
    out = _table(header, rows, "lllrrrl")
    if len(ordered) > MAX_FEATURE_ROWS:
        out += [
            "",
            f"{len(ordered) - MAX_FEATURE_ROWS} more feature(s) not shown "
            f"(the first {MAX_FEATURE_ROWS}, drifted first; `--format json` lists all).",
        ]
    return out


def _quality(dq: Mapping[str, Any]) -> list[str]:
    issues = dq["issues"]
    if not issues:
        out = ["### Data quality: no issues"]
    else:
        out = [f"### Data quality: {len(issues)} issue(s)", ""]
        rows = [
            [md_escape(i["feature"]), md_escape(i["kind"]), md_escape(i["message"])]
            for i in issues[:MAX_ISSUE_ROWS]
        ]
        out += _table(["feature", "issue", "detail"], rows, "lll")
        if len(issues) > MAX_ISSUE_ROWS:
            out += ["", f"{len(issues) - MAX_ISSUE_ROWS} more issue(s) not shown."]
    if dq["extra_columns"]:
        names = ", ".join(md_escape(n) for n in dq["extra_columns"][:MAX_ISSUE_ROWS])
        out += ["", f"Extra columns (not in the reference): {names}"]
    missing = [f for f in dq.get("features", []) if f.get("missing")]
    if missing:
        rows = [
            [
                md_escape(f["name"]),
                fmt_share(f["missing_share"]),
                fmt_share(f["reference_missing_share"]),
            ]
            for f in missing[:MAX_ISSUE_ROWS]
        ]
        out += ["", "Missing values:", ""]
        out += _table(["feature", "missing", "missing in reference"], rows, "lrr")
    return out


def _model_quality(mq: Mapping[str, Any]) -> list[str]:
    out = [f"### Model quality ({md_escape(mq['task'])}, {mq['rows']:,} rows)", ""]
    rows = [
        [md_escape(m["name"]), fmt_num(m["value"]), fmt_num(m["reference"]), fmt_num(m["change"])]
        for m in mq["metrics"]
    ]
    out += _table(["metric", "value", "reference", "change"], rows, "lrrr")
    out += [f"- note: {md_escape(n)}" for n in mq["notes"]]
    return out


def _performance(perf: Mapping[str, Any]) -> list[str]:
    out = [f"### {md_escape(performance_title(perf))}", ""]
    rows = [[md_escape(c) for c in row] for row in performance_rows(perf)]
    out += _table(list(PERFORMANCE_HEADER), rows, "lrrr")
    drift = concept_drift_text(perf)
    out += ["", f"**{md_escape(drift)}**" if perf["concept_drift"] else md_escape(drift), ""]
    out += [f"- note: {md_escape(n)}" for n in perf["notes"]]
    return out
