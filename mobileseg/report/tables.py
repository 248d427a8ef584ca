"""Tables as Markdown and as HTML (no tabulate/jinja dependency).

Both leave out a column with no value in any row, and :func:`constant_columns` lets a caller move the columns
whose value is the same in every row into the table's title, so the tables fit a page. The HTML table is
sortable: every header cell sorts by its column on click (the page's script), numbers by value (``data-v``).
"""

from __future__ import annotations

import html


def _cell(v, digits: int = 1) -> str:
    if v is None:
        return ""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return ""
        return f"{v:.{digits}f}"
    return str(v)


def _number(v):
    """The value a numeric cell sorts by, or None for text and empty cells."""
    if v is None or isinstance(v, (bool, str)) or type(v).__name__ == "bool_":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _shown(df, columns: dict) -> list:
    """The columns of ``columns`` that hold a value in at least one row."""
    rows = df.to_dict("records")
    return [c for c in columns if any(_cell(r.get(c)) != "" for r in rows)]


def constant_columns(df, columns: dict, digits: dict | None = None, keep=()) -> tuple[dict, str]:
    """``(columns without those whose value is one and the same in every row, "header value, ..." of those)``;
    ``keep`` are never moved (e.g. the model name of a one-row table)."""
    digits = digits or {}
    rows = df.to_dict("records")
    left, moved = {}, []
    for c, head in columns.items():
        values = {_cell(r.get(c), digits.get(c, 1)) for r in rows}
        if c not in keep and len(rows) > 1 and len(values) == 1 and "" not in values:
            moved.append(f"{head} {values.pop()}")
        else:
            left[c] = head
    return left, ", ".join(moved)


def markdown_table(df, columns: dict, digits: dict | None = None) -> str:
    """``columns`` maps DataFrame column -> header; ``digits`` gives decimals per float column (default 1)."""
    digits = digits or {}
    cols = _shown(df, columns)
    heads = [columns[c] for c in cols]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(" --- " for _ in heads) + "|"]
    for r in df.to_dict("records"):
        cells = [_cell(r.get(c), digits.get(c, 1)).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(df, columns: dict, digits: dict | None = None, titles: dict | None = None) -> str:
    """A sortable HTML table: text cells left-aligned and unwrapped (class ``t``), numbers right-aligned with their
    value in ``data-v``. ``titles`` maps a column to the DataFrame column whose text is the cell's tooltip."""
    digits, titles = digits or {}, titles or {}
    cols = _shown(df, columns)
    out = [
        "<table class='sortable'>",
        "<thead><tr>"
        + "".join(
            f"<th title='sort by {html.escape(columns[c], quote=True)}'>{html.escape(columns[c])}</th>" for c in cols
        )
        + "</tr></thead><tbody>",
    ]
    for r in df.to_dict("records"):
        cells = []
        for c in cols:
            v = r.get(c)
            num = _number(v)
            attrs = f" data-v='{num!r}'" if num is not None else " class='t'"
            tip = r.get(titles[c]) if c in titles else None
            if tip:
                attrs += f" title='{html.escape(str(tip), quote=True)}'"
            cells.append(f"<td{attrs}>{html.escape(_cell(v, digits.get(c, 1)))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
