"""The ``check`` report as one self-contained HTML file (``--format html``).

One file that opens anywhere with no network: inline CSS, no script, each chart an SVG
embedded as a ``data:`` image (an image runs no script and its ids cannot clash with the
page's). A Content-Security-Policy that allows nothing else (no script, no fetch, images
from ``data:`` only) backs the escaping: every string from the data (column names,
category values, paths, messages) goes through :func:`html.escape`; anchors use the
feature's position, never its name.

Sections: the verdict, a table of features (drifted first, linked to their charts), a
chart per feature (reference vs current: a histogram on shared bins for numerical
features, category shares for categorical ones, see
:mod:`modelmonitor.core.stats.histograms`), the data-quality issues and per-feature
table, and model quality when labels were given. Sizes are bounded: at most
:data:`MAX_CHARTS` charts and :data:`MAX_FEATURE_ROWS` table rows, and the page says what
it left out. Pure: report dict and distributions in, text out.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

from modelmonitor.core.stats.histograms import CategoricalBars, Distribution, NumericalHistogram
from modelmonitor.edge.report_charts import CURRENT_COLOUR, REFERENCE_COLOUR, chart_svg
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

#: Charts on one page (drifted features first); a chart is ~25-35 KiB in the page.
MAX_CHARTS = 60

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = f"""
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px;
  padding: 0 16px; color: #1d2733; background: #fff; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 18px; margin-top: 32px; }}
.verdict {{ padding: 10px 14px; border-radius: 6px; font-weight: 600; }}
.drift {{ background: #fde8e8; color: #8a1c1c; }} .ok {{ background: #e6f4ea; color: #1e5b2f; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border-bottom: 1px solid #dde3ea; padding: 4px 10px; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.drifted td {{ background: #fff4f4; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr));
  gap: 18px; }}
figure {{ margin: 0; border: 1px solid #dde3ea; border-radius: 6px; padding: 8px; }}
figure img {{ width: 100%; height: auto; display: block; }}
figcaption {{ font-size: 13px; }}
.badge {{ font-size: 12px; padding: 1px 6px; border-radius: 8px; margin-left: 6px; }}
.badge.drift {{ background: #b42318; color: #fff; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }}
.ref {{ background: {REFERENCE_COLOUR}; }} .cur {{ background: {CURRENT_COLOUR}; }}
.note {{ color: #5b6b7b; font-size: 13px; }}
"""


def esc(value: Any) -> str:
    """Text from the data, safe in element content and quoted attributes."""
    return html.escape(str(value), quote=True)


def render_html(result: Mapping[str, Any], distributions: Mapping[str, Distribution]) -> str:
    """The whole page (see the module docstring)."""
    ordered = drifted_first(result["features"])
    anchors = {f["name"]: f"f{i}" for i, f in enumerate(ordered)}
    ds = result["dataset"]
    ref, cur = result["reference"], result["current"]
    body = [
        "<h1>modelmonitor check</h1>",
        f'<p class="verdict {"drift" if ds["drifted"] else "ok"}">{esc(verdict_line(result))}</p>',
        f"<p>Reference <code>{esc(ref['path'])}</code> ({ref['rows']:,} rows, "
        f"{esc(ref['kind'])}) &middot; current <code>{esc(cur['path'])}</code> "
        f"({cur['rows']:,} rows) &middot; drift when: {esc(decision_rules(result))}</p>",
        *[f'<p class="note">{esc(n)}</p>' for n in result.get("notes", [])],
        *_feature_table(ordered, anchors, distributions),
        *_charts(ordered, anchors, distributions),
        *_quality(result["data_quality"]),
    ]
    mq = result.get("model_quality")
    if mq:
        body += _model_quality(mq)
    perf = result.get("performance")
    if perf:
        body += _performance(perf)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>modelmonitor check: {esc(verdict_line(result))}</title>\n"
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _row(cells: Sequence[tuple[str, bool]], cls: str = "") -> str:
    """A table row of (already escaped html, is_number) cells."""
    tds = "".join(f'<td class="n">{c}</td>' if num else f"<td>{c}</td>" for c, num in cells)
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


def _head(*names: str) -> str:
    return "<tr>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>"


def _feature_table(
    ordered: Sequence[Mapping[str, Any]],
    anchors: Mapping[str, str],
    distributions: Mapping[str, Distribution],
) -> list[str]:
    charted = _charted(ordered, distributions)
    rows = []
    for f in ordered[:MAX_FEATURE_ROWS]:
        name = esc(f["name"])
        if f["name"] in charted:
            name = f'<a href="#{anchors[f["name"]]}">{name}</a>'
        rows.append(
            _row(
                [
                    (name, False),
                    (esc(f["type"]), False),
                    (esc(f["method"]), False),
                    (fmt_num(f["statistic"]), True),
                    (esc(p_value_text(f)), True),
                    (fmt_num(f["threshold"]), True),
                    (esc(drifted_text(f)), False),
                ],
                "drifted" if f["drifted"] else "",
            )
        )
    out = [
        "<h2>Features</h2>",
        '<table id="features">',
        _head("feature", "type", "method", "statistic", "p-value", "threshold", "drifted"),
        *rows,
        "</table>",
    ]
    if len(ordered) > MAX_FEATURE_ROWS:
        out.append(
            f'<p class="note">{len(ordered) - MAX_FEATURE_ROWS} more feature(s) not listed '
            f"(the first {MAX_FEATURE_ROWS}, drifted first; <code>--format json</code> lists "
            "all).</p>"
        )
    return out


#: Statuses of features whose data cannot be charted against the reference.
_UNCHARTABLE = ("missing_column", "type_mismatch")


def _chartable(ordered: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f["name"] for f in ordered if f.get("status", "ok") not in _UNCHARTABLE]


def chart_candidates(features: Sequence[Mapping[str, Any]]) -> list[str]:
    """The features a page charts (drifted first, at most MAX_CHARTS): compute only these."""
    return _chartable(drifted_first(features))[:MAX_CHARTS]


def _charted(
    ordered: Sequence[Mapping[str, Any]], distributions: Mapping[str, Distribution]
) -> list[str]:
    """Names of the features that get a chart, in page order, at most MAX_CHARTS."""
    return [n for n in _chartable(ordered) if n in distributions][:MAX_CHARTS]


def _charts(
    ordered: Sequence[Mapping[str, Any]],
    anchors: Mapping[str, str],
    distributions: Mapping[str, Distribution],
) -> list[str]:
    charted = _charted(ordered, distributions)
    by_name = {f["name"]: f for f in ordered}
    out = [
        "<h2>Distributions</h2>",
        '<p class="note">Share of values per bin or category, '
        '<span class="swatch ref"></span>reference '
        '<span class="swatch cur"></span>current. Numerical features: equal-width bins '
        "shared by both, over the reference's range widened to the current window's "
        "central 99%.</p>",
        '<div class="charts">',
    ]
    for name in charted:
        f, dist = by_name[name], distributions[name]
        svg = base64.b64encode(chart_svg(dist).encode()).decode("ascii")
        badge = '<span class="badge drift">drifted</span>' if f["drifted"] else ""
        out.append(
            f'<figure id="{anchors[name]}" data-feature-type="{esc(dist.type)}">'
            f"<figcaption><strong>{esc(name)}</strong>{badge} &middot; {esc(f['method'])} "
            f"{esc(fmt_num(f['statistic']))} (threshold {esc(fmt_num(f['threshold']))})"
            f"{_caption_note(dist)}</figcaption>"
            f'<img alt="{esc(name)}: reference vs current" '
            f'src="data:image/svg+xml;base64,{svg}"></figure>'
        )
    out.append("</div>")
    missing = len(_chartable(ordered)) - MAX_CHARTS
    if missing > 0:
        out.append(
            f'<p class="note">{missing} more chart(s) left out: a page shows at most '
            f"{MAX_CHARTS} (drifted features first).</p>"
        )
    return out


def _caption_note(dist: Distribution) -> str:
    if isinstance(dist, NumericalHistogram) and dist.clipped:
        return (
            f'<br><span class="note">{dist.clipped:,} current value(s) beyond the shown '
            "range are counted in the end bins.</span>"
        )
    if isinstance(dist, CategoricalBars) and dist.other_categories:
        return (
            f'<br><span class="note">{dist.other_categories:,} less frequent categories '
            "summed in the last bar.</span>"
        )
    return ""


def _quality(dq: Mapping[str, Any]) -> list[str]:
    issues = dq["issues"]
    out = [f"<h2>Data quality: {len(issues)} issue(s)</h2>"]
    if issues:
        out += [
            '<table id="quality-issues">',
            _head("feature", "issue", "detail"),
            *(
                _row([(esc(i[k]), False) for k in ("feature", "kind", "message")])
                for i in issues[:MAX_ISSUE_ROWS]
            ),
            "</table>",
        ]
        if len(issues) > MAX_ISSUE_ROWS:
            out.append(f'<p class="note">{len(issues) - MAX_ISSUE_ROWS} more issue(s).</p>')
    if dq["extra_columns"]:
        names = ", ".join(esc(n) for n in dq["extra_columns"][:MAX_ISSUE_ROWS])
        out.append(f"<p>Extra columns (not in the reference): {names}</p>")
    feats = dq.get("features", [])
    rows = [
        _row(
            [
                (esc(q["name"]), False),
                (fmt_share(q["missing_share"]), True),
                (fmt_share(q["reference_missing_share"]), True),
                (fmt_share(q.get("out_of_range_share")), True),
                (esc(f"{q.get('new_category_count', 0):,}"), True),
                (_span(q.get("min"), q.get("max")), True),
                (_span(q.get("reference_min"), q.get("reference_max")), True),
            ]
        )
        for q in feats[:MAX_FEATURE_ROWS]
    ]
    out += [
        '<table id="quality-features">',
        _head(
            "feature",
            "missing",
            "missing (ref)",
            "out of range",
            "new category values",
            "range",
            "range (ref)",
        ),
        *rows,
        "</table>",
    ]
    return out


def _span(lo: Any, hi: Any) -> str:
    """A numerical range, '-' for categorical features (no range)."""
    if lo is None and hi is None:
        return "-"
    return f"{esc(fmt_num(lo))} &ndash; {esc(fmt_num(hi))}"


def _model_quality(mq: Mapping[str, Any]) -> list[str]:
    rows = [
        _row(
            [
                (esc(m["name"]), False),
                (fmt_num(m["value"]), True),
                (fmt_num(m["reference"]), True),
                (fmt_num(m["change"]), True),
            ]
        )
        for m in mq["metrics"]
    ]
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in mq["notes"])
    return [
        f"<h2>Model quality ({esc(mq['task'])}, {mq['rows']:,} rows)</h2>",
        "<table>",
        _head("metric", "value", "reference", "change"),
        *rows,
        "</table>",
        notes,
    ]


def _performance(perf: Mapping[str, Any]) -> list[str]:
    rows = [
        _row([(esc(name), False), (esc(ref), True), (esc(est), True), (esc(real), True)])
        for name, ref, est, real in performance_rows(perf)
    ]
    cls = "verdict drift" if perf["concept_drift"] else "verdict ok"
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in perf["notes"])
    return [
        f"<h2>{esc(performance_title(perf))}</h2>",
        "<table>",
        _head(*PERFORMANCE_HEADER),
        *rows,
        "</table>",
        f'<p class="{cls}">{esc(concept_drift_text(perf))}</p>',
        notes,
    ]
