"""One SVG chart per feature, reference vs current, drawn with matplotlib.

matplotlib is the optional ``report`` extra (``pip install 'modelmonitor[report]'``):
only ``--format html`` imports it, so ``check``'s other formats and the operator start
without it. The object-oriented API (:class:`matplotlib.figure.Figure` with the SVG
canvas) is used, never ``pyplot``: no global figure state, no GUI backend.

Names and category labels come from the data: text is drawn with mathtext off (a ``$``
in a column name must not be parsed as TeX) and written by matplotlib's SVG writer,
which escapes it; the HTML page embeds the SVG as an image, where no script runs.
Bars carry ids (``ref-<i>``, ``cur-<i>``) so tests can find them.
"""

from __future__ import annotations

import io
import unicodedata
import warnings
from typing import Any

from modelmonitor.core.stats.histograms import CategoricalBars, Distribution, NumericalHistogram

#: Colours of the two series (also in the HTML legend and read back by the browser test).
REFERENCE_COLOUR = "#3b6fb6"
CURRENT_COLOUR = "#e8702a"
#: Characters of a name or category label drawn in a chart (the page shows full names).
MAX_LABEL_CHARS = 32

_RC = {
    "svg.fonttype": "none",  # text stays text: a few KiB per chart instead of glyph paths
    "svg.hashsalt": "modelmonitor",  # stable ids: the same input gives the same file
    "text.parse_math": False,
    "text.usetex": False,
    "font.size": 9,
}


class PlottingUnavailableError(RuntimeError):
    """matplotlib is not installed (the ``report`` extra)."""


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise PlottingUnavailableError(
            "--format html needs matplotlib: pip install 'modelmonitor[report]'"
        ) from None
    return matplotlib, Figure


def short(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A label cut to ``limit`` characters, with an ellipsis when cut.

    Control characters become U+FFFD: XML cannot hold most of them, and one in a
    category value would make the whole chart an unreadable image.
    """
    label = " ".join(label.split())
    label = "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c for c in label)
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def chart_svg(dist: Distribution) -> str:
    """The SVG document of one feature's chart."""
    matplotlib, Figure = _matplotlib()
    # glyphs missing from matplotlib's font only affect its size estimate: the viewer's
    # fonts draw the text (svg.fonttype none), so the warning is noise on stderr
    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(dist, NumericalHistogram):
            fig = _histogram(Figure, dist)
        else:
            fig = _bars(Figure, dist)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _histogram(Figure: Any, h: NumericalHistogram) -> Any:
    fig = Figure(figsize=(6.4, 2.8), layout="constrained")
    ax = fig.add_subplot()
    left = h.edges[:-1]
    width = h.edges[1:] - h.edges[:-1]
    ref = ax.bar(left, h.reference, width=width / 2, align="edge", color=REFERENCE_COLOUR)
    cur = ax.bar(left + width / 2, h.current, width=width / 2, align="edge", color=CURRENT_COLOUR)
    _ids(ref, cur)
    ax.set_xlim(h.edges[0], h.edges[-1])
    ax.set_ylabel("share of values")
    _percent_axis(ax.yaxis)
    _legend(ax, h.n_reference, h.n_current)
    return fig


def _bars(Figure: Any, b: CategoricalBars) -> Any:
    n = len(b.labels)
    fig = Figure(figsize=(6.4, 1.2 + 0.28 * max(n, 2)), layout="constrained")
    ax = fig.add_subplot()
    pos = list(range(n))
    ref = ax.barh([p - 0.2 for p in pos], b.reference, height=0.4, color=REFERENCE_COLOUR)
    cur = ax.barh([p + 0.2 for p in pos], b.current, height=0.4, color=CURRENT_COLOUR)
    _ids(ref, cur)
    ax.set_yticks(pos, [short(lbl) for lbl in b.labels])
    ax.invert_yaxis()  # the largest category on top
    ax.set_xlabel("share of values")
    _percent_axis(ax.xaxis)
    _legend(ax, b.n_reference, b.n_current)
    return fig


def _ids(ref: Any, cur: Any) -> None:
    for i, patch in enumerate(ref):
        patch.set_gid(f"ref-{i}")
    for i, patch in enumerate(cur):
        patch.set_gid(f"cur-{i}")


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def _legend(ax: Any, n_ref: int, n_cur: int) -> None:
    ax.legend(
        [f"reference (n={n_ref:,})", f"current (n={n_cur:,})"],
        loc="best",
        frameon=False,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
