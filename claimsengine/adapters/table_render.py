"""Rendering decision tables: Markdown, CSV, JSON, a standalone HTML page, and the terminal."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from .table import ANY, COLUMNS, DIMENSIONS, NO_STATE, Row

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
body {{ font: 12px/1.3 system-ui, sans-serif; margin: 1rem; }}
h1 {{ font-size: 1.2rem; margin: 0 0 0.5rem; }}
table {{ border-collapse: collapse; width: 100%; table-layout: fixed; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 2px 4px; vertical-align: top; text-align: left; overflow-wrap: anywhere; }}
th {{ background: #f0f0f0; cursor: pointer; user-select: none; position: sticky; top: 0; }}
th.asc::after {{ content: " \\25B2"; }}
th.desc::after {{ content: " \\25BC"; }}
tr.issued td.outcome {{ color: #176117; font-weight: 600; }}
tr.rejected td.outcome {{ color: #a31515; font-weight: 600; }}
td.any {{ color: #888; font-style: italic; }}
td small {{ color: #666; display: block; }}
details summary {{ cursor: pointer; color: #555; }}
#filter {{ margin-bottom: 0.5rem; width: 30rem; max-width: 100%; padding: 0.3rem; }}
#more {{ padding: 0.5rem 0; color: #666; }}
</style>
</head>
<body>
<h1>{title}</h1>
<noscript><p>This page needs JavaScript to show its rows; use <code>--format markdown</code> or <code>csv</code> otherwise.</p></noscript>
<input id="filter" type="search" placeholder="Filter rows (every word must match)" autofocus>
<span id="count"></span>
<table id="decisions">
<colgroup>{colgroup}</colgroup>
<thead><tr>{header}</tr></thead>
<tbody></tbody>
</table>
<p id="more"></p>
<script type="application/json" id="rows">[
"""

# Rows are data, and the page draws them a page at a time as the reader scrolls, so a table of
# tens of thousands of rows opens as fast as a small one; the filter and the sort work on the data.
_HTML_TAIL = """]</script>
<script>
(function () {
  var PAGE = 300;
  var ANY = "any";
  var data = JSON.parse(document.getElementById("rows").textContent);
  var texts = data.map(function (r) { return r.join(" ").toLowerCase(); });
  var table = document.getElementById("decisions");
  var body = table.tBodies[0];
  var filter = document.getElementById("filter");
  var count = document.getElementById("count");
  var more = document.getElementById("more");
  var shown = data.map(function (_, i) { return i; });
  var drawn = 0;
  function cell(tr, text, css, detail) {
    var td = document.createElement("td");
    td.className = text === ANY ? css + " any" : css;
    td.textContent = text;
    if (detail) { var small = document.createElement("small"); small.textContent = detail; td.appendChild(small); }
    tr.appendChild(td);
    return td;
  }
  function draw(r) {
    // r: kind, name, id, grant, audience, scope, domain, organization, state, outcome, detail, aud, iss, token scope, claims, rules
    var tr = document.createElement("tr");
    tr.className = r[0];
    cell(tr, r[1] || r[2], "application", r[1] ? r[2] : "");
    var names = ["grant", "audience", "scope", "domain", "organization", "state"];
    for (var i = 0; i < names.length; i++) { cell(tr, r[i + 3], names[i], ""); }
    cell(tr, r[9], "outcome", r[10]);
    cell(tr, r[11], "aud", "");
    cell(tr, r[12], "iss", "");
    cell(tr, r[13], "token_scope", r[14]);
    var rules = cell(tr, "", "rules", "");
    if (r[15]) {
      var details = document.createElement("details");
      var summary = document.createElement("summary");
      summary.textContent = r[15].split(" ").length;
      details.appendChild(summary);
      details.appendChild(document.createTextNode(r[15]));
      rules.appendChild(details);
    }
    return tr;
  }
  function drawMore() {
    var fragment = document.createDocumentFragment();
    var end = Math.min(drawn + PAGE, shown.length);
    for (; drawn < end; drawn++) { fragment.appendChild(draw(data[shown[drawn]])); }
    body.appendChild(fragment);
    more.textContent = drawn < shown.length ? "Showing " + drawn + " of " + shown.length + " rows; scroll for more." : "";
  }
  function redraw() {
    body.textContent = "";
    drawn = 0;
    drawMore();
    count.textContent = " " + shown.length + " of " + data.length + " rows";
  }
  new IntersectionObserver(function (entries) {
    if (entries[0].isIntersecting && drawn < shown.length) { drawMore(); }
  }, { rootMargin: "600px" }).observe(more);
  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    shown = [];
    for (var i = 0; i < data.length; i++) {
      if (words.every(function (w) { return texts[i].indexOf(w) !== -1; })) { shown.push(i); }
    }
    redraw();
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var column = [1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15][index];
      shown.sort(function (a, b) {
        var x = data[a][column], y = data[b][column];
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return (asc ? c : -c) || a - b;
      });
      redraw();
    });
  });
  redraw();
})();
</script>
</body>
</html>
"""

# (header, width in % of the page); the widths add up to 100 so nothing scrolls sideways.
HTML_COLUMNS: tuple[tuple[str, int], ...] = (
    ("application", 10),
    ("grant", 8),
    ("audience", 9),
    ("scope", 5),
    ("domain", 7),
    ("organization", 6),
    ("state", 5),
    ("outcome", 21),
    ("aud", 9),
    ("iss", 6),
    ("token scope / claims", 10),
    ("rules", 4),
)


def html_cells(row: Row) -> list[str]:
    """One row of the HTML page's data: kind, application name and id, the class, then the outcome's texts."""
    v = row.as_dict()
    o = row.outcome
    if o.kind == "rejected":
        outcome, detail = f"{o.status} {o.error}", o.description or ""
    else:
        outcome = o.kind if o.kind != "issued" else f"issued {o.format}"
        parts = [f"{o.alg}/{o.typ}" if o.alg else "", f"expires in {o.expires_in} s" if o.expires_in is not None else ""]
        if o.refresh_token:
            parts.append("+ refresh token")
        if o.id_token:
            parts.append(f"+ ID token ({o.id_token_expires_in} s)")
        detail = " · ".join(p for p in parts if p)
    name = row.client_name if row.request.client != ANY else ""
    return [
        o.kind,
        name,
        row.request.client,
        *(row.request.get(d) for d in DIMENSIONS[1:]),
        outcome,
        detail,
        text(v["aud"], "aud"),
        text(v["iss"]),
        text(v["token_scope"]),
        text(v["claims"]),
        " ".join(o.rules),
    ]


def _script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` in it)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(rows: Iterable[Row], *, title: str = "Decision table") -> Iterator[str]:
    """A standalone page: fixed column widths (no sideways scrolling), rule ids folded in ``<details>``,
    rows drawn as the reader scrolls, a filter and sortable columns."""
    header = "".join(f"<th>{html.escape(name)}</th>" for name, _ in HTML_COLUMNS)
    colgroup = "".join(f'<col style="width: {width}%">' for _, width in HTML_COLUMNS)
    yield _HTML_HEAD.format(title=html.escape(title), header=header, colgroup=colgroup)
    for i, row in enumerate(rows):
        yield ("," if i else "") + _script_json(html_cells(row)) + "\n"
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
        if r.state != NO_STATE:
            cls += f" · state {r.state}"
        console.print(Padding(Text(cls), (0, 0, 0, 2), expand=False))
        style = "green" if row.outcome.kind == "issued" else "red" if row.outcome.kind == "rejected" else ""
        console.print(Padding(Text("→ " + _outcome_line(row), style=style), (0, 0, 0, 4), expand=False))
    console.print()
    console.print(Text(f"{count} rows. Rule ids: --format markdown|json|html, or explain a request.", style="dim"))
