"""``report.html``: one self-contained page (no network, no external file): the plots, the tables, the notes.

The Pareto plots are inlined as matplotlib's SVG, with each point's record beside it as JSON; the page's script
lays an invisible copy of the points over the plot and shows the record of the point under the pointer (model,
runtime, precision, latency with its interval, mIoU and its source, parity). The other plots are embedded PNGs.
Clicking a table's header sorts the table by that column (numbers by value, empty cells last; again: reverse).
"""

from __future__ import annotations

import base64
import html
import json
import re

CSS = """
body{font-family:sans-serif;max-width:1240px;margin:auto;padding:0 16px 1em;box-sizing:border-box}
p.about{max-width:1100px}
img{max-width:100%;height:auto;display:block}
figure svg{width:960px;max-width:100%;height:auto;display:block}
figure{margin:0 0 1.5em;position:relative;width:fit-content;max-width:100%}
table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em;max-width:100%}
td,th{border:1px solid #ccc;padding:2px 5px;text-align:right;vertical-align:top}
td.t{text-align:left;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;font-weight:600;white-space:normal}
th:hover{background:#e6e6e6}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td[title]{text-decoration:underline dotted;cursor:help}
.tip{position:absolute;display:none;pointer-events:none;background:#fff;border:1px solid #888;border-radius:4px;
     box-shadow:0 2px 6px rgba(0,0,0,.25);padding:6px 8px;font-size:12px;max-width:420px;z-index:10}
.tip table{margin:0;font-size:12px}
.tip td{border:none;padding:1px 4px;text-align:left;white-space:normal}
.tip td:first-child{color:#555;white-space:nowrap}
"""

SCRIPT = """
(function () {
  function key(tr, col) {
    var td = tr.cells[col];
    if (!td) return null;
    if (td.dataset.v !== undefined) return parseFloat(td.dataset.v);
    var s = td.textContent.trim();
    return s === '' ? null : s;
  }
  function sortBy(th) {
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
    var up = th.getAttribute('aria-sort') !== 'ascending';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y
            : String(x).localeCompare(String(y), undefined, {numeric: true});
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable th').forEach(function (th) {
    th.addEventListener('click', function () { sortBy(th); });
  });
  document.querySelectorAll('figure.points').forEach(function (fig) {
    var records = JSON.parse(fig.querySelector('script.records').textContent);
    var group = fig.querySelector('svg [id="' + fig.dataset.points + '"]');
    var tip = fig.querySelector('.tip');
    if (!group) return;
    var hits = group.cloneNode(true);
    hits.removeAttribute('id');
    hits.setAttribute('class', 'hits');
    group.parentNode.appendChild(hits);  // on top of labels and error bars, invisible
    Array.prototype.forEach.call(hits.children, function (p, i) {
      p.setAttribute('style', 'fill:transparent;stroke:none;cursor:pointer');
      p.setAttribute('data-i', i);
      function show(ev) {
        var rec = records[i] || {}, t = document.createElement('table');
        Object.keys(rec).forEach(function (k) {
          var tr = t.insertRow(), a = tr.insertCell(), b = tr.insertCell();
          a.textContent = k; b.textContent = rec[k];
        });
        tip.replaceChildren(t);
        var box = fig.getBoundingClientRect(), x = ev.clientX - box.left + 14, y = ev.clientY - box.top + 14;
        tip.style.display = 'block';
        if (x + tip.offsetWidth > box.width) x = Math.max(0, ev.clientX - box.left - tip.offsetWidth - 14);
        tip.style.left = x + 'px';
        tip.style.top = y + 'px';
      }
      p.addEventListener('mouseenter', show);
      p.addEventListener('mousemove', show);
      p.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    });
  });
})();
"""


def _inline_svg(path) -> str:
    """The SVG file's ``<svg>`` element alone (no XML prolog, doctype or RDF metadata), to sit inside the page."""
    text = path.read_text(encoding="utf-8")
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)


def _points_id(svg_text: str) -> str | None:
    m = re.search(r'<g id="([^"]+-points)"', svg_text)
    return m.group(1) if m else None


def _figure(title: str, paths, records) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    svg = next((p for p in paths if p.suffix == ".svg"), None)
    if records is not None and svg is not None:
        body = _inline_svg(svg)
        gid = _points_id(body)
        if gid:
            data = json.dumps(records, ensure_ascii=False).replace("</", "<\\/")
            return (
                f"<figure class='points' data-points='{html.escape(gid, quote=True)}' "
                f"aria-label='{html.escape(title, quote=True)}'>{body}<div class='tip' role='tooltip'></div>"
                f"<script type='application/json' class='records'>{data}</script></figure>"
            )
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f"<figure><img alt='{html.escape(title, quote=True)}' src='data:image/png;base64,{data}'></figure>"


def write_html(report, about: str) -> None:
    """Write ``report.html`` into ``report.out`` from the report's plots, tables and notes."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>mobileseg report</title><style>{CSS}</style></head><body><h1>mobileseg report</h1>",
        f"<p class='about'>{html.escape(about)}</p>",
    ]
    if report.notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    for title, paths in report.plots:
        svg = next((p for p in paths if p.suffix == ".svg"), None)
        parts.append(f"<h2>{html.escape(title)}</h2>{_figure(title, paths, report.points.get(svg))}")
    for title, _, tab in report.tables:
        parts.append(f"<h3>{html.escape(title)}</h3>{tab}")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    report.html = report.out / "report.html"
    report.html.write_text("\n".join(parts), encoding="utf-8")
