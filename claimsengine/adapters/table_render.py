"""Rendering decision tables: Markdown, CSV, JSON, a standalone HTML page, and the terminal."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal

from .table import ANY, COLUMNS, DIMENSIONS, Row

if TYPE_CHECKING:
    from rich.console import Console

Format = Literal["markdown", "csv", "json", "html"]
FORMATS: tuple[Format, ...] = ("markdown", "csv", "json", "html")


def _cell(row: Row, column: str) -> str:
    value = row.as_dict()[column]
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


MARKDOWN_COLUMNS = (*DIMENSIONS, "endpoint", "kind", "format", "aud", "iss", "token_scope", "error", "status", "rules")


def render_markdown(rows: Iterable[Row], *, title: str | None = None, preamble: str = "") -> Iterator[str]:
    """The table as Markdown, line by line."""
    if title is not None:
        yield f"# {title}\n\n"
    if preamble:
        yield preamble.rstrip("\n") + "\n\n"
    yield "| " + " | ".join(MARKDOWN_COLUMNS) + " |\n"
    yield "|" + "---|" * len(MARKDOWN_COLUMNS) + "\n"
    for row in rows:
        yield "| " + " | ".join(md_cell(_cell(row, c)) for c in MARKDOWN_COLUMNS) + " |\n"


def render_csv(rows: Iterable[Row]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row, c) for c in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def render_json(rows: Iterable[Row]) -> Iterator[str]:
    """A JSON list of objects, streamed."""
    yield "["
    for i, row in enumerate(rows):
        yield ("," if i else "") + "\n  " + json.dumps(row.as_dict(), ensure_ascii=False)
    yield "\n]\n"


_HTML_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: top; text-align: left; }}
th {{ background: #f0f0f0; cursor: pointer; user-select: none; position: sticky; top: 0; }}
th.asc::after {{ content: " \\25B2"; }}
th.desc::after {{ content: " \\25BC"; }}
tr.issued td.kind {{ color: #176117; font-weight: bold; }}
tr.rejected td.kind {{ color: #a31515; font-weight: bold; }}
td.any {{ color: #888; font-style: italic; }}
#filter {{ margin-bottom: 0.75rem; width: 30rem; padding: 0.3rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<input id="filter" type="search" placeholder="Filter rows (every word must match)" autofocus>
<span id="count"></span>
<table id="decisions">
<thead><tr>{header}</tr></thead>
<tbody>
"""

_HTML_TAIL = """</tbody>
</table>
<script>
(function () {
  var table = document.getElementById("decisions");
  var body = table.tBodies[0];
  var filter = document.getElementById("filter");
  var count = document.getElementById("count");
  function update() {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var text = row.textContent.toLowerCase();
      var ok = words.every(function (w) { return text.indexOf(w) !== -1; });
      row.style.display = ok ? "" : "none";
      if (ok) { shown += 1; }
    });
    count.textContent = " " + shown + " of " + body.rows.length + " rows";
  }
  filter.addEventListener("input", update);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index].textContent, y = b.cells[index].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  update();
})();
</script>
</body>
</html>
"""


def render_html(rows: Iterable[Row], *, title: str = "Decision table") -> Iterator[str]:
    """A standalone page: inline CSS and JavaScript, sortable columns, a filter box."""
    header = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    yield _HTML_HEAD.format(title=html.escape(title), header=header)
    for row in rows:
        cells = []
        for c in COLUMNS:
            text = _cell(row, c)
            classes = [c] + (["any"] if text == ANY else [])
            cells.append(f'<td class="{" ".join(classes)}">{html.escape(text)}</td>')
        yield f'<tr class="{html.escape(row.outcome.kind)}">' + "".join(cells) + "</tr>\n"
    yield _HTML_TAIL


def render(rows: Iterable[Row], fmt: Format, *, title: str = "Decision table") -> Iterator[str]:
    if fmt == "markdown":
        return render_markdown(rows)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "json":
        return render_json(rows)
    return render_html(rows, title=title)


def render_terminal(rows: Iterable[Row], title: str, console: Console) -> None:
    """A rich table for a terminal; narrow terminals get fewer columns."""
    from rich.table import Table

    grid = Table(title=title, show_lines=False)
    columns: tuple[str, ...] = (*DIMENSIONS, "kind", "format", "aud", "iss", "token_scope", "error", "status", "rules")
    if console.width < 200:
        # A narrow terminal cannot show rule ids legibly; --format markdown/csv/json has them.
        columns = (*DIMENSIONS, "kind", "format", "aud", "error", "status")
        grid.caption = "rule ids, iss and scopes: widen the terminal or use --format markdown|csv|json|html"
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        cells = row.as_dict()
        style = "green" if row.outcome.kind == "issued" else "red"
        values = []
        for column in columns:
            value = cells[column]
            text = " ".join(value) if isinstance(value, list) else ("" if value is None else str(value))
            values.append(f"[{style}]{text}[/]" if column == "kind" else text.replace("[", "\\["))
        grid.add_row(*values)
    console.print(grid)
