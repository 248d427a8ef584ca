"""The per-layer report: rows in graph order, the first diverging layer, the match summary, the JSON file.

Numpy only (no torch, no runtime): it formats what :mod:`.match` found, and reads back what it wrote.
"""

from __future__ import annotations

import json
import math
import os

from .metrics import first_over, previous_figure

SCHEMA = "mobileseg.numerics/1"


def build(cap, tensors, result: dict, limit: float, meta: dict, min_rms: float = 0.0) -> dict:
    matches, leaves = result["matches"], result["leaves"]
    fused_into: dict[str, list[str]] = {}
    for leaf, status, detail in leaves:
        if status == "fused" and detail:
            fused_into.setdefault(detail, []).append(leaf.path)
    rows, unmatched = [], []
    for e in cap.tensors:
        m = matches.get(e.index)
        if m is None:
            unmatched.append({"module": e.path, "class": e.cls, "shape": e.shape, "leaf": e.leaf})
            continue
        t = tensors[m.tensor]
        rows.append(
            {
                "depth": len(rows),
                "module": e.path,
                "class": e.cls,
                "aliases": e.aliases,
                "fused": fused_into.get(e.path, []),
                "runtime_tensor": t.name,
                "op": t.op,
                "shape": e.shape,
                "runtime_shape": list(t.value.shape),
                "layout": m.layout,
                "method": m.method,
                **{k: m.figures[k] for k in ("rel_l2", "cosine", "sqnr_db", "max_abs", "ref_rms")},
                "judged": not (m.figures.get("ref_rms", 1.0) < min_rms),
            }
        )
    counts = {s: 0 for s in ("matched", "fused", "identity", "removed", "unmatched")}
    for _, status, _ in leaves:
        counts[status] += 1
    total = len(leaves)
    first = first_over(rows, limit, min_rms)
    report = {
        "schema": SCHEMA,
        **meta,
        "limit_rel_l2": limit,
        "min_ref_rms": min_rms,
        "layers": rows,
        "leaves": [{"module": leaf.path, "class": leaf.cls, "status": s, "detail": d} for leaf, s, d in leaves],
        "unmatched": unmatched,
        "summary": {
            "leaf_modules": total,
            **counts,
            "matched_pct": round(100.0 * counts["matched"] / total, 1) if total else None,
            "accounted_pct": round(100.0 * (total - counts["unmatched"]) / total, 1) if total else None,
            "rows": len(rows),
            "runtime_tensors": len(tensors),
            "not_judged": sum(not r["judged"] for r in rows),
            "methods": {k: sum(r["method"] == k for r in rows) for k in dict.fromkeys(r["method"] for r in rows)},
        },
        "first_diverging": None,
    }
    if first is not None:
        row = rows[first]
        report["first_diverging"] = {
            "depth": first,
            "module": row["module"],
            "fused": row["fused"],
            "runtime_tensor": row["runtime_tensor"],
            "rel_l2": row["rel_l2"],
            "previous_rel_l2": previous_figure(rows, first),
            "limit": limit,
        }
        report["first_diverging"]["sentence"] = sentence(report["first_diverging"])
    return report


def _g(v) -> str:
    return "-" if v is None else f"{v:.1e}" if isinstance(v, float) else str(v)


def sentence(first: dict | None) -> str | None:
    """ "first diverging layer: <module> (rel-L2 jumps from 1e-6 to 3e-2)" (the console and the bench record)."""
    if not first:
        return None
    fused = f" (with {', '.join(first['fused'])} fused into it)" if first.get("fused") else ""
    before = first.get("previous_rel_l2")
    jump = (
        f"rel-L2 jumps from {_g(before)} to {_g(first['rel_l2'])}"
        if before is not None
        else f"rel-L2 {_g(first['rel_l2'])} at the first layer"
    )
    return f"first diverging layer: {first['module']}{fused} ({jump}; limit {_g(first['limit'])})"


def table_rows(report: dict) -> list[dict]:
    """The rows as strings for a plain-text table; the first diverging one marked."""
    first = (report.get("first_diverging") or {}).get("depth")
    out = []
    for r in report["layers"]:
        sq = r["sqnr_db"]
        mark = ">>" if r["depth"] == first else "" if r.get("judged", True) else "~"
        out.append(
            {
                "": mark,
                "#": r["depth"],
                "module": r["module"],
                "runtime tensor": _short(r["runtime_tensor"]),
                "shape": "x".join(map(str, r["shape"])),
                "rel_l2": _g(r["rel_l2"]),
                "cosine": f"{r['cosine']:.6f}",
                "sqnr_db": "exact" if sq is None else f"{sq:.1f}",
                "max_abs": _g(r["max_abs"]),
                "match": r["method"] + (f" ({r['layout']})" if r["layout"] == "NHWC->NCHW" else ""),
                "fused": ",".join(_relative(p, r["module"]) for p in r["fused"]),
            }
        )
    return out


def _relative(path: str, module: str) -> str:
    """``path`` without the dotted prefix it shares with ``module`` (``SIM.2.global_act.conv`` beside
    ``SIM.2.act`` -> ``global_act.conv``)."""
    a, b = path.split("."), module.split(".")
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return ".".join(a[n:])


def _short(name: str, width: int = 48) -> str:
    name = str(name)
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "-inf" if v < 0 else "nan"
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def file_name(report: dict) -> str:
    """``numerics-<format>-<runtime>-<precision>[-<device>].json``."""
    dev = "" if report.get("device") in (None, "host") else "-" + str(report["device"]).replace(":", "_")
    return f"numerics-{report['format']}-{report['runtime']}-{report['precision']}{dev}.json"


def write(report: dict, folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_name(report))
    with open(path, "w") as f:
        json.dump(_clean(report), f, indent=1)
    return path


def read(path: str) -> dict:
    with open(path) as f:
        rep = json.load(f)
    if not isinstance(rep, dict) or rep.get("schema") != SCHEMA:
        from ..errors import MobilesegError

        raise MobilesegError(f"{path} is not a per-layer numerics report ({SCHEMA})")
    return rep


def bench_summary(report: dict) -> dict:
    """What a failing bench cell's record keeps: the first diverging layer and the match counts."""
    s = report["summary"]
    return {
        "first_diverging": report.get("first_diverging"),
        "matched_pct": s["matched_pct"],
        "accounted_pct": s["accounted_pct"],
        "rows": s["rows"],
    }
