"""``check``'s markdown and HTML output: picks the renderer, gathers what HTML charts.

The renderers themselves are pure (:mod:`report_markdown`, :mod:`report_html`); this
module only computes the distributions the charts need (reference profile vs the
current columns) for the features a page will show, and imports the HTML side, and so
matplotlib, only for ``--format html``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.stats.profile import ReferenceProfile

FORMATS = ("markdown", "html")


def render_report(
    fmt: str,
    result: Mapping[str, Any],
    *,
    reference: ReferenceProfile | Dataset,
    current: Dataset,
    features: Sequence[Feature],
) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "markdown":
        from modelmonitor.edge.report_markdown import render_markdown

        return render_markdown(result)
    if fmt != "html":
        raise ValueError(f"unknown report format {fmt!r}")
    from modelmonitor.core.stats.histograms import distributions
    from modelmonitor.edge.report_html import chart_candidates, render_html

    shown = set(chart_candidates(result["features"]))
    feats = [f for f in features if f.name in shown]
    if isinstance(reference, Dataset):
        reference = ReferenceProfile.from_dataset(reference, feats, exact_limit=None)
    dists = distributions(reference, dict(current.columns), feats)
    return render_html(result, dists)
