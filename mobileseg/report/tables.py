"""Tables as Markdown and as HTML (no tabulate/jinja dependency)."""
from __future__ import annotations

import html


def _cell(v, digits: int = 1) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(df, columns: dict, digits: dict | None = None) -> str:
    """``columns`` maps DataFrame column -> header; ``digits`` gives decimals per float column (default 1)."""
    digits = digits or {}
    heads = list(columns.values())
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(" --- " for _ in heads) + "|"]
    for r in df.to_dict("records"):
        cells = [_cell(r.get(c), digits.get(c, 1)).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(df, columns: dict, digits: dict | None = None) -> str:
    digits = digits or {}
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in columns.values()) + "</tr>"]
    for r in df.to_dict("records"):
        out.append("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c), digits.get(c, 1)))}</td>" for c in columns)
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)
