"""Plain-text table rendering shared by the commands."""

from __future__ import annotations


def table(rows: list[dict], columns: list[str] | None = None, headers: dict | None = None) -> str:
    if not rows:
        return "(nothing)"
    columns = columns or list(rows[0])
    headers = headers or {}
    cells = [[str(headers.get(c, c)) for c in columns]]
    cells += [["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
