"""The HTML decision table in a real browser: Debian's chromium, driven by Playwright.

An 18,550-row page (the size of a 150-client x 40-API tenant's table) must fit a 1400 px
window without sideways scrolling, keep rows short, and fold rule ids into a closed
``<details>``. How fast it opens is measured by ``bench/bench_html.py``, not here.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from claimsengine.adapters import table_render
from claimsengine.adapters.table import Row, TableContext
from tests.test_table import example

pytestmark = pytest.mark.slow

ROWS = 18_550


@cache
def base_rows() -> tuple[Row, ...]:
    return tuple(TableContext(example()).rows())


def many_rows(count: int) -> Iterator[Row]:
    """``count`` rows: the example's rows, repeated under distinct application ids and names."""
    rows = base_rows()
    for i in range(count):
        row = rows[i % len(rows)]
        copy = i // len(rows)
        request = dataclasses.replace(row.request, client=f"{row.request.client}-{copy:04d}")
        yield Row(request, row.outcome, f"{row.client_name} #{copy}")


def chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    return binary


def test_a_large_html_table_fits_1400_px_with_short_rows_and_folded_rule_ids(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "table.html"
    page_file.write_text("".join(table_render.render_html(many_rows(ROWS), title="Decision table")), encoding="utf-8")
    shot = tmp_path / "table.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(page_file.as_uri(), wait_until="load")
            metrics = page.evaluate(
                """() => {
                  const doc = document.scrollingElement;
                  const rows = Array.from(document.querySelectorAll("#decisions tbody tr"));
                  const heights = rows.map(r => r.getBoundingClientRect().height).sort((a, b) => a - b);
                  return {
                    scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
                    drawn: rows.length, count: document.getElementById("count").textContent,
                    medianHeight: heights[Math.floor(heights.length / 2)],
                    openDetails: document.querySelectorAll("#decisions details[open]").length,
                    details: document.querySelectorAll("#decisions td.rules details").length,
                    visibleRuleText: rows.some(r => r.querySelector("td.rules").innerText.includes("domain.resolved")),
                  };
                }"""
            )
            page.screenshot(path=str(shot))
            # Scrolling draws more rows; the filter works on every row, drawn or not.
            page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_function("() => document.querySelectorAll('#decisions tbody tr').length > 300")
            page.fill("#filter", "access_denied")
            counted = page.inner_text("#count")
            page.click("#decisions tbody tr td.rules summary")
            opened = page.inner_text("#decisions tbody tr td.rules details[open]")
        finally:
            browser.close()
    assert metrics["count"].strip() == f"{ROWS} of {ROWS} rows"
    assert 0 < metrics["drawn"] < ROWS
    assert metrics["scrollWidth"] <= metrics["clientWidth"], metrics
    assert metrics["medianHeight"] < 60, metrics
    assert metrics["details"] > 0
    assert metrics["openDetails"] == 0
    assert not metrics["visibleRuleText"], "rule ids must be folded away until a row's details are opened"
    shown = int(counted.split()[0])
    assert 0 < shown < ROWS
    assert "domain.resolved" in opened
    # The screenshot is a real, non-blank 1400 px wide PNG.
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1400
    assert len(data) > 20_000
