"""How long the HTML decision table takes to open in headless chromium (Debian's, via Playwright).

Not a test. Run from the repository root with the project venv:

    .venv/bin/python bench/bench_html.py              # 18,550 rows (a 150 x 40 tenant), 3 rounds
    .venv/bin/python bench/bench_html.py --rows 2000 --rounds 1

It prints the time from navigation start to the load event and to the first paint after it,
as the browser's own Performance API reports them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from playwright.sync_api import sync_playwright

    from claimsengine.adapters import table_render
    from tests.test_table_html import many_rows

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=18_550)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = shutil.which("chromium")
    if binary is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "table.html"
        page_file.write_text("".join(table_render.render_html(many_rows(args.rows))), encoding="utf-8")
        size = page_file.stat().st_size
        loads: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=binary, args=["--no-sandbox", "--disable-gpu"])
            for _ in range(args.rounds):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(page_file.as_uri(), wait_until="load", timeout=120_000)
                ms = page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(performance.now())))")
                loads.append(ms / 1000)
                page.close()
            browser.close()
    print(f"{args.rows} rows, {size / 1e6:.1f} MB: opens in {statistics.median(loads):.2f} s (median of {args.rounds}; {loads})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
