"""`curate report`: one self-contained page that headless Chromium renders without a
console error, with the funnel and every score histogram drawn."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from curation.cli import main
from tests.conftest import recipe_of, run_local, shared_file

RECIPE = """
stages:
  - length_filter: {min_chars: 200}
  - gopher_quality: {}
  - threshold: {column: length_chars, top_fraction: 0.5}
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    run_local(recipe_of(RECIPE, shared_file("web/c4-sample-1000.jsonl.gz")), out)
    page = out.parent / "report.html"
    result = CliRunner().invoke(main, ["report", str(out), "-o", str(page)])
    assert result.exit_code == 0, result.output
    return page


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "threshold:below_cut" in html and "gopher_quality:" in html
    assert html.count("<div class='doc'>") >= 3
    # a count column's caption gives its sums (length_chars, gopher_word_count, ...)
    caption = r"hist-length_chars'>(?:(?!<figure).)*; sum [\d,]+ \([\d,]+ kept\)</figcaption>"
    assert re.search(caption, html, re.DOTALL)


def test_report_lists_the_sites(report: Path) -> None:
    """The C4 rows have a url: the hosts with the most documents, as ``inspect --by``
    counts them, the rest summed on the last line."""
    from curation.inspect import shards

    html = report.read_text(encoding="utf-8")
    found = shards.by_group(shards.open_source(report.parent / "out"), "split_part(url, '/', 3)")
    assert f"<p class='meta'>{found.groups:,} hosts" in html
    sites = html.split("<h2 id='sites'>Sites</h2>")[1].split("<h2")[0]
    first = found.table.row(0, named=True)
    assert f"<tr><td>{first['group']}</td><td>{first['documents']:,}</td>" in sites
    assert sites.count("<tr>") == 1 + min(found.groups, 20) + (found.groups > 20)
    assert f"({found.groups - 20:,} other groups)" in sites


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (`make browser` installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    errors: list[str] = []
    shot = tmp_path / "report.png"
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request {r.url}"))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        plots = page.locator("figure.plot svg")
        histograms = page.locator("figure.plot[id^='hist-']")
        count, drawn = plots.count(), histograms.count()
        sizes = [plots.nth(i).bounding_box() for i in range(count)]
        paths = page.locator("figure.plot svg path").count()
        page.locator("#scores").scroll_into_view_if_needed()
        page.screenshot(path=str(shot), full_page=True)
        chromium.close()
    assert errors == []
    assert drawn >= 5  # length_chars and the gopher_quality measures
    assert count == drawn + 1  # and the funnel
    assert all(box and box["width"] > 300 and box["height"] > 100 for box in sizes)
    assert paths > 100  # bars, axes and text drawn as paths
    # the screenshot shows the plots: the kept bars' blue is on the page
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    blue = sum(1 for pixel in image.getdata() if pixel == (0x3A, 0x7B, 0xD5))
    assert blue > 2000
