"""``modelmonitor check --format markdown|html``: what a CI step summary and a person see.

The HTML page is opened in a real headless Chromium (Debian's ``chromium``, installed by
tests/cluster/system-deps.sh) and its screenshot must show the charts: pixels of both
series' colours, which vanish when the charts are taken out of the page.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmonitor.core.stats.histograms import CategoricalBars, NumericalHistogram
from modelmonitor.edge.report_common import MAX_FEATURE_ROWS
from modelmonitor.edge.report_markdown import md_escape, render_markdown

pytest.importorskip("matplotlib", reason="the 'report' extra (make venv installs it)")

from modelmonitor.edge import report_html
from modelmonitor.edge.report_charts import CURRENT_COLOUR, REFERENCE_COLOUR

EVIL = '<script>alert("x")</script>|[a](http://e.example)'


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelmonitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A reference and a window: 'amount' and 'country' drift; 'age' and EVIL do not."""
    d = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(7)
    n_ref, n_cur = 3000, 800
    ref = {
        "age": rng.normal(40, 10, n_ref),
        EVIL: rng.normal(0, 1, n_ref),
        "amount": rng.lognormal(3, 1, n_ref),
        "country": rng.choice(["de", "fr", "<b>it</b>"], n_ref, p=[0.5, 0.3, 0.2]),
    }
    cur = {
        "age": rng.normal(40, 10, n_cur),
        EVIL: rng.normal(0, 1, n_cur),
        "amount": rng.lognormal(3.8, 1, n_cur),
        "country": rng.choice(["de", "fr", "es|x"], n_cur, p=[0.2, 0.3, 0.5]),
    }
    pq.write_table(pa.table(ref), d / "ref.parquet")
    pq.write_table(pa.table(cur), d / "cur.parquet")
    return {p.name: p for p in d.iterdir()}


def _check(files: dict[str, Path], fmt: str, *extra: str) -> str:
    proc = _run(
        "check",
        "--reference",
        str(files["ref.parquet"]),
        "--current",
        str(files["cur.parquet"]),
        "--format",
        fmt,
        *extra,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def page(files: dict[str, Path]) -> str:
    return _check(files, "html")


# --- drifted first, in every format ----------------------------------------------------


def test_drifted_features_come_first_in_the_table_json_keeps_file_order(
    files: dict[str, Path],
) -> None:
    report = json.loads(_check(files, "json"))
    names = [f["name"] for f in report["features"]]
    assert names == ["age", EVIL, "amount", "country"]  # stable for machines and diffs
    assert [f["drifted"] for f in report["features"]] == [False, False, True, True]
    table = _check(files, "table").splitlines()
    head = next(i for i, line in enumerate(table) if line.startswith("feature "))
    rows = [line.split()[0] for line in table[head + 1 : head + 5]]
    assert rows[:2] == ["amount", "country"]
    assert rows[2] == "age"


# --- markdown -----------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    """Cells of a GFM table row: split on pipes not escaped by a backslash."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_markdown_is_a_step_summary_with_drifted_first(files: dict[str, Path]) -> None:
    md = _check(files, "markdown")
    lines = md.splitlines()
    assert lines[0].startswith("## :red_circle: modelmonitor check: DRIFT DETECTED")
    assert "2 of 4 features drifted" in lines[0]
    head = lines.index("| feature | type | method | statistic | p-value | threshold | drifted |")
    rows = [_cells(r) for r in lines[head + 2 : head + 6]]
    assert all(len(r) == 7 for r in rows), "every row keeps 7 cells: '|' is escaped"
    assert [r[0].strip() for r in rows[:2]] == ["**amount**", "**country**"]
    assert rows[0][6].strip() == "**yes**"
    assert rows[2][6].strip() == "no"
    assert "### Data quality: 1 issue(s)" in md  # the new category
    issue = next(line for line in lines if line.startswith("| country | new"))
    assert len(_cells(issue)) == 3, "the category 'es|x' stays in its cell"
    assert len(md.encode()) < 1024 * 1024  # GitHub's step-summary limit


def test_markdown_escapes_names_from_the_data(files: dict[str, Path]) -> None:
    md = _check(files, "markdown")
    assert "<script" not in md
    assert "](http" not in md, "a column name cannot become a link"
    assert md_escape(EVIL) in md
    assert md_escape("a|b\nc") == "a\\|b c"
    assert md_escape("<img src=x>") == "&lt;img src=x&gt;"
    assert md_escape("**bold** `code` ~~s~~ ![i](u)") == (
        "\\*\\*bold\\*\\* \\`code\\` \\~\\~s\\~\\~ \\!\\[i\\]\\(u\\)"
    )


def _result(n_features: int) -> dict[str, Any]:
    features = [
        {
            "name": f"f{i}",
            "type": "numerical",
            "method": "ks",
            "statistic": 0.1,
            "p_value": 0.5,
            "p_value_adjusted": None,
            "threshold": 0.05,
            "drifted": i % 7 == 3,
            "status": "ok",
        }
        for i in range(n_features)
    ]
    return {
        "dataset": {
            "drifted": False,
            "share": 0.1,
            "drifted_features": 1,
            "total_features": n_features,
            "drift_share": 0.5,
        },
        "features": features,
        "data_quality": {"issues": [], "extra_columns": [], "features": []},
        "correction": "none",
        "alpha": 0.05,
        "reference": {"path": "r.parquet", "kind": "data", "rows": 10},
        "current": {"path": "c.parquet", "rows": 10},
    }


def test_markdown_caps_the_rows_and_says_so() -> None:
    md = render_markdown(_result(MAX_FEATURE_ROWS + 50))
    rows = [r for r in md.splitlines() if re.match(r"\| (\*\*)?f\d+", r)]
    assert len(rows) == MAX_FEATURE_ROWS
    assert "50 more feature(s) not shown" in md
    assert rows[0].startswith("| **f3**"), "drifted first"


# --- HTML: structure ----------------------------------------------------------------------


class _Page(HTMLParser):
    """Figures, images and every tag of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.figures: list[dict[str, str | None]] = []
        self.images: list[str] = []
        self.captions: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "figure":
            self.figures.append(a)
        if tag == "img":
            self.images.append(a["src"] or "")
        if tag == "figcaption":
            self._in_caption = True
            self.captions.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.captions[-1] += data


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def _svg(src: str) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix) :]).decode()


def test_html_has_a_chart_per_feature_drifted_first(page: str) -> None:
    p = _parse(page)
    assert [c.split("\xb7")[0].strip() for c in p.captions] == [
        "amountdrifted",
        "countrydrifted",
        "age",
        EVIL,
    ]
    assert [f["data-feature-type"] for f in p.figures] == [
        "numerical",
        "categorical",
        "numerical",
        "numerical",
    ]
    for src in p.images:
        svg = _svg(src)
        assert svg.lstrip().startswith("<?xml")
        refs = re.findall(r'<g id="ref-(\d+)"', svg)
        curs = re.findall(r'<g id="cur-(\d+)"', svg)
        assert refs
        assert len(refs) == len(curs)
    histogram = _svg(p.images[0])
    assert len(re.findall(r'<g id="ref-\d+"', histogram)) == 20  # DEFAULT_BINS
    categorical = _svg(p.images[1])
    assert len(re.findall(r'<g id="ref-\d+"', categorical)) == 4  # de, fr, <b>it</b>, es|x


def test_html_is_self_contained(page: str) -> None:
    p = _parse(page)
    for tag, attrs in p.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:", "#")), f"<{tag} {key}={value[:40]}>"
    assert not any(tag in ("script", "link", "iframe", "object") for tag, _ in p.tags)
    csp = [a for t, a in p.tags if t == "meta" and a.get("http-equiv")]
    assert csp[0]["content"] == report_html._CSP
    assert "default-src 'none'" in report_html._CSP


def test_html_escapes_names_and_categories_from_the_data(page: str) -> None:
    assert "<script" not in page
    assert "<b>it</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    for src in _parse(page).images:
        svg = _svg(src)
        assert "<script" not in svg
        assert "<b>" not in svg
    # the names are in the charts' text, escaped by the SVG writer
    categorical = _svg(_parse(page).images[1])
    assert "&lt;b&gt;it&lt;/b&gt;" in categorical


def test_html_caps_the_charts_and_says_so() -> None:
    rng = np.random.default_rng(3)
    n = report_html.MAX_CHARTS + 5
    result = _result(n)
    dists: dict[str, NumericalHistogram | CategoricalBars] = {
        f"f{i}": NumericalHistogram(
            f"f{i}",
            np.linspace(0, 1, 4),
            rng.dirichlet(np.ones(3)),
            rng.dirichlet(np.ones(3)),
            100,
            50,
            0,
        )
        for i in range(n)
    }
    page = report_html.render_html(result, dists)
    p = _parse(page)
    assert len(p.figures) == report_html.MAX_CHARTS
    assert p.captions[0].startswith("f3"), "drifted first"
    assert f"5 more chart(s) left out: a page shows at most {report_html.MAX_CHARTS}" in page


def test_html_without_matplotlib_is_a_clear_usage_error(
    files: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'matplotlib' or name.startswith('matplotlib.'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelmonitor",
            "check",
            "--reference",
            str(files["ref.parquet"]),
            "--current",
            str(files["cur.parquet"]),
            "--format",
            "html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        "modelmonitor: error: --format html needs matplotlib: pip install 'modelmonitor[report]'"
    )
    # markdown needs no plotting library
    env_md = subprocess.run(
        [sys.executable, "-c", "import modelmonitor.edge.report_markdown, sys; "
         "print('matplotlib' in sys.modules)"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    assert env_md.stdout.strip() == "False"


def test_html_against_a_saved_profile(files: dict[str, Path], tmp_path: Path) -> None:
    profile = tmp_path / "ref.profile.json"
    proc = _run("baseline", "--data", str(files["ref.parquet"]), "--output", str(profile))
    assert proc.returncode == 0, proc.stderr
    proc = _run(
        "check",
        "--reference",
        str(profile),
        "--current",
        str(files["cur.parquet"]),
        "--format",
        "html",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_parse(proc.stdout).figures) == 4


# --- HTML: what a browser shows --------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is missing: tests/cluster/system-deps.sh installs it")
    pytest.skip("no chromium (make deps installs Debian's chromium)")


def _screenshot(html_file: Path, out: Path) -> Any:
    from PIL import Image  # matplotlib's own dependency

    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root in CI
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={out.parent / 'chromium-profile'}",
            "--window-size=1200,1800",
            f"--screenshot={out}",
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.exists(), proc.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)


def _pixels_of(img: Any, colour: str) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int(np.count_nonzero(np.abs(img - rgb).max(axis=2) <= 6))


def test_chromium_screenshot_shows_the_charts(page: str, tmp_path: Path) -> None:
    html_file = tmp_path / "report.html"
    html_file.write_text(page)
    img = _screenshot(html_file, tmp_path / "report.png")
    ref_px = _pixels_of(img, REFERENCE_COLOUR)
    cur_px = _pixels_of(img, CURRENT_COLOUR)
    # bars of four charts: thousands of pixels each (the legend swatches are 100)
    assert ref_px > 5000, ref_px
    assert cur_px > 5000, cur_px
    # the charts sit below the tables and in two columns: both halves of the page
    _rows, cols = np.nonzero(np.abs(img - _rgb(CURRENT_COLOUR)).max(axis=2) <= 6)
    assert cols.min() < img.shape[1] // 2 < cols.max()
    # control: the same page without its chart images shows (almost) none of the colours
    bare = re.sub(r'<img [^>]*src="data:image/svg\+xml;base64,[^"]*">', "", page)
    assert bare != page
    bare_file = tmp_path / "bare.html"
    bare_file.write_text(bare)
    bare_img = _screenshot(bare_file, tmp_path / "bare.png")
    assert _pixels_of(bare_img, REFERENCE_COLOUR) < 500
    assert _pixels_of(bare_img, CURRENT_COLOUR) < 500


def _rgb(colour: str) -> Any:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)


def _bar_heights(svg: str, series: str) -> list[float]:
    """Heights of the bars ``<g id="{series}-i"><path d="M x y0 L x y0 L x y1 ...">``."""
    heights = []
    for m in re.finditer(rf'<g id="{series}-\d+">\s*<path d="([^"]*)"', svg):
        ys = [float(y) for y in re.findall(r"[ML] [-\d.]+ ([-\d.]+)", m.group(1))]
        heights.append(max(ys) - min(ys))
    return heights


def test_chart_bars_are_as_tall_as_the_shares() -> None:
    from modelmonitor.edge.report_charts import chart_svg

    ref, cur = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.4, 0.3, 0.2, 0.1])
    h = NumericalHistogram("x", np.linspace(0, 1, 5), ref, cur, 10, 10, 0)
    svg = chart_svg(h)
    ref_h, cur_h = _bar_heights(svg, "ref"), _bar_heights(svg, "cur")
    scale = ref_h[0] / ref[0]
    np.testing.assert_allclose(ref_h, ref * scale, rtol=1e-4)
    np.testing.assert_allclose(cur_h, cur * scale, rtol=1e-4)
    bars = CategoricalBars("c", ("a", "b", "c"), ref[:3], cur[:3], 10, 10, 0)
    svg = chart_svg(bars)  # horizontal bars: their lengths are the x extents
    widths = []
    for m in re.finditer(r'<g id="ref-\d+">\s*<path d="([^"]*)"', svg):
        xs = [float(x) for x in re.findall(r"[ML] ([-\d.]+) [-\d.]+", m.group(1))]
        widths.append(max(xs) - min(xs))
    np.testing.assert_allclose(widths, ref[:3] * widths[0] / ref[0], rtol=1e-4)


def test_hostile_labels_make_a_valid_chart_drawn_as_plain_text(
    recwarn: pytest.WarningsRecorder,
) -> None:
    import xml.dom.minidom

    from modelmonitor.edge.report_charts import chart_svg

    labels = ("a\x00b", "\x1b[31m", "$x^2$", "&amp;<b>", "\u6f22\u5b57")
    bars = CategoricalBars("c", labels, np.full(5, 0.2), np.full(5, 0.2), 10, 10, 0)
    svg = chart_svg(bars)
    xml.dom.minidom.parseString(svg)  # well-formed: control characters replaced
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "$x^2$" in texts, "not parsed as TeX"
    assert "&amp;amp;&lt;b&gt;" in texts
    assert "a\ufffdb" in texts
    assert not [w for w in recwarn if "Glyph" in str(w.message)]
