"""Rendering decision tables: Markdown, CSV, JSON, a standalone HTML page, and the terminal."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from .table import ANY, COLUMNS, DIMENSIONS, Row

if TYPE_CHECKING:
    from rich.console import Console

Format = Literal["markdown", "csv", "json", "html"]
FORMATS: tuple[Format, ...] = ("markdown", "csv", "json", "html")


def text(value: Any, column: str = "") -> str:
    """A JSON cell value as text: nothing for ``None``, yes/no, ``[a, b]`` for an ``aud`` array."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if column == "aud":
            return "[" + ", ".join(str(v) for v in value) + "]"
        return " ".join(str(v) for v in value)
    return str(value)


def application(row: Row) -> str:
    """The application's name with its id, or its id alone (and ``any`` stays ``any``)."""
    client = row.request.client
    return f"{row.client_name} ({client})" if row.client_name and client != ANY else client


def _cell(row: Row, column: str, values: dict[str, Any] | None = None) -> str:
    if column == "application":
        return application(row)
    values = values if values is not None else row.as_dict()
    return text(values[column], column)


def md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


# Markdown shows everything but splits nothing: the application is "name (id)".
MARKDOWN_COLUMNS = ("application", *(c for c in COLUMNS if c not in ("client", "client_name")))


def render_markdown(rows: Iterable[Row], *, title: str | None = None, preamble: str = "") -> Iterator[str]:
    """The table as Markdown, line by line."""
    if title is not None:
        yield f"# {title}\n\n"
    if preamble:
        yield preamble.rstrip("\n") + "\n\n"
    yield "| " + " | ".join(MARKDOWN_COLUMNS) + " |\n"
    yield "|" + "---|" * len(MARKDOWN_COLUMNS) + "\n"
    for row in rows:
        values = row.as_dict()
        yield "| " + " | ".join(md_cell(_cell(row, c, values)) for c in MARKDOWN_COLUMNS) + " |\n"


def render_csv(rows: Iterable[Row]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = row.as_dict()
        writer.writerow([_cell(row, c, values) for c in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def render_json(rows: Iterable[Row]) -> Iterator[str]:
    """A JSON list of objects, streamed: arrays are arrays, what does not apply is null."""
    yield "["
    for i, row in enumerate(rows):
        yield ("," if i else "") + "\n  " + json.dumps(row.as_dict(), ensure_ascii=False)
    yield "\n]\n"


_HTML_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 13px/1.35 system-ui, sans-serif; margin: 1rem; }}
h1 {{ font-size: 1.2rem; margin: 0 0 0.5rem; }}
table {{ border-collapse: collapse; width: 100%; table-layout: fixed; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 2px 4px; vertical-align: top; text-align: left; overflow-wrap: anywhere; }}
th {{ background: #f0f0f0; cursor: pointer; user-select: none; position: sticky; top: 0; }}
th.asc::after {{ content: " \\25B2"; }}
th.desc::after {{ content: " \\25BC"; }}
tr.issued td.outcome {{ color: #176117; font-weight: 600; }}
tr.rejected td.outcome {{ color: #a31515; font-weight: 600; }}
td.any {{ color: #888; font-style: italic; }}
td small {{ color: #666; }}
details summary {{ cursor: pointer; color: #555; }}
#filter {{ margin-bottom: 0.5rem; width: 30rem; max-width: 100%; padding: 0.3rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<input id="filter" type="search" placeholder="Filter rows (every word must match)" autofocus>
<span id="count">{count}</span>
<table id="decisions">
<colgroup>{colgroup}</colgroup>
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
  var texts = null;
  function update() {
    if (texts === null) {
      texts = Array.prototype.map.call(body.rows, function (row) { return row.textContent.toLowerCase(); });
    }
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row, i) {
      var ok = words.every(function (w) { return texts[i].indexOf(w) !== -1; });
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
      texts = null;
      var fragment = document.createDocumentFragment();
      rows.forEach(function (r) { fragment.appendChild(r); });
      body.appendChild(fragment);
    });
  });
})();
</script>
</body>
</html>
"""

# (header, width in % of the page); the widths add up to 100 so nothing scrolls sideways.
HTML_COLUMNS: tuple[tuple[str, int], ...] = (
    ("application", 10),
    ("grant", 7),
    ("audience", 10),
    ("scope", 5),
    ("domain", 7),
    ("organization", 6),
    ("outcome", 7),
    ("token", 8),
    ("aud", 9),
    ("iss", 7),
    ("token scope", 7),
    ("claims", 5),
    ("error description", 8),
    ("rules", 4),
)


def _td(value: str, css: str, *, raw: bool = False) -> str:
    classes = f"{css} any" if value == ANY else css
    return f'<td class="{classes}">{value if raw else html.escape(value)}</td>'


def _html_row(row: Row) -> str:
    v = row.as_dict()
    o = row.outcome
    if row.client_name and row.request.client != ANY:
        app = f"{html.escape(row.client_name)}<br><small>{html.escape(row.request.client)}</small>"
    else:
        app = html.escape(row.request.client)
    if o.kind == "rejected":
        outcome = f"{o.status} {o.error}"
        token = ""
    else:
        outcome = o.kind if o.kind != "issued" else f"issued {o.format}"
        parts = [f"{o.alg}/{o.typ}" if o.alg else "", f"{o.expires_in} s" if o.expires_in is not None else ""]
        if o.refresh_token:
            parts.append("+refresh")
        if o.id_token:
            parts.append(f"+id_token {o.id_token_expires_in} s")
        token = " ".join(p for p in parts if p)
    rules = f"<details><summary>{len(o.rules)}</summary>{html.escape(' '.join(o.rules))}</details>" if o.rules else ""
    cells = [
        _td(app, "application", raw=True),
        *(_td(row.request.get(d), d) for d in DIMENSIONS[1:]),
        _td(outcome, "outcome"),
        _td(token, "token"),
        _td(text(v["aud"], "aud"), "aud"),
        _td(text(v["iss"]), "iss"),
        _td(text(v["token_scope"]), "token_scope"),
        _td(text(v["claims"]), "claims"),
        _td(text(v["error_description"]), "error_description"),
        _td(rules, "rules", raw=True),
    ]
    return f'<tr class="{html.escape(o.kind)}">' + "".join(cells) + "</tr>\n"


def render_html(rows: Iterable[Row], *, title: str = "Decision table") -> Iterator[str]:
    """A standalone page: fixed column widths (no sideways scrolling), rule ids folded, sortable, filterable."""
    header = "".join(f"<th>{html.escape(name)}</th>" for name, _ in HTML_COLUMNS)
    colgroup = "".join(f'<col style="width: {width}%">' for _, width in HTML_COLUMNS)
    yield _HTML_HEAD.format(title=html.escape(title), header=header, colgroup=colgroup, count="")
    for row in rows:
        yield _html_row(row)
    yield _HTML_TAIL


def render(rows: Iterable[Row], fmt: Format, *, title: str = "Decision table") -> Iterator[str]:
    if fmt == "markdown":
        return render_markdown(rows)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "json":
        return render_json(rows)
    return render_html(rows, title=title)


def _outcome_line(row: Row) -> str:
    o = row.outcome
    if o.kind == "rejected":
        return f"{o.status} {o.error}: {o.description}"
    return o.summary()


def render_terminal(rows: Iterable[Row], title: str, console: Console) -> None:
    """One short block per row, grouped by application and grant; fits any width (80 columns and up).

    Rule ids are folded away here: ``--format markdown|json|html`` and ``explain`` show them.
    """
    from rich.padding import Padding
    from rich.text import Text

    console.print(Text(title, style="bold"))
    group: tuple[str, str] | None = None
    count = 0
    for row in rows:
        count += 1
        key = (row.request.client, row.request.grant)
        if key != group:
            group = key
            console.print()
            console.print(Text(f"{application(row)} · {row.request.grant}", style="bold"))
        r = row.request
        cls = f"audience {r.audience} · scope {r.scope} · domain {r.domain} · organization {r.organization}"
        console.print(Padding(Text(cls), (0, 0, 0, 2), expand=False))
        style = "green" if row.outcome.kind == "issued" else "red" if row.outcome.kind == "rejected" else ""
        console.print(Padding(Text("→ " + _outcome_line(row), style=style), (0, 0, 0, 4), expand=False))
    console.print()
    console.print(Text(f"{count} rows. Rule ids: --format markdown|json|html, or explain a request.", style="dim"))
