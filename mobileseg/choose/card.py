"""The deployment card (``card.json`` + ``card.md``): what an app developer takes away from ``mobileseg choose``.

Built only from what the run measured and the export wrote: the artifact (path and sha256 from the manifest), the
runtime with its version and settings (the bench record's), the input contract (the manifest's ``input``), the
expected latency with its interval and the device's identity, memory, parity, the accuracy evidence, and the
commands that reproduce the measurement. ``decision`` is ``chosen`` or, after a tie, ``tied`` (the card then
describes the leading candidate and names the others: it is not a decision).
"""

from __future__ import annotations

import json
from pathlib import Path

CARD_VERSION = 1
DEVICE_KEYS = (
    "kind",
    "serial",
    "model",
    "manufacturer",
    "soc",
    "soc_id",
    "abi",
    "cpu",
    "cores",
    "pinned_cpu",
    "android_release",
    "sdk",
    "emulated",
)


def build(
    cand, arm, records: list, manifest: dict, folder, evidence, race, command: str, tied=(), results_file=None
) -> dict:
    """The card as a dict (see README, "The deployment card")."""
    last = records[-1]
    entry = (manifest.get("formats") or {}).get(cand.format) or {}
    files = [
        {"path": str(Path(folder) / f["path"]), "bytes": f.get("bytes"), "sha256": f.get("sha256")}
        for f in entry.get("files") or []
        if isinstance(f, dict)
    ]
    mem = [r.get("memory") or {} for r in records]
    peak = [m.get("peak_rss_growth_mb") for m in mem if m.get("peak_rss_growth_mb") is not None]
    h, w = cand.resolution
    dev = last.get("device") or {}
    return {
        "card_version": CARD_VERSION,
        "decision": "chosen" if arm.fate == "chosen" else "tied",
        "tied_with": [a.id for a in tied if a.id != arm.id],
        "candidate": {
            "model": cand.model,
            "resolution": [h, w],
            "runtime": cand.runtime,
            "format": cand.format,
            "precision": cand.precision,
            "graph": cand.graph,
            "threads": cand.threads,
        },
        "artifact": {
            "export_dir": str(folder),
            "files": files,
            "model_file": files[0]["path"] if files else None,
            "sha256": files[0]["sha256"] if files else None,
            "weights": manifest.get("weights"),
        },
        "runtime": {
            "name": cand.runtime,
            "version": last.get("runtime_version"),
            "settings": last.get("runtime_settings") or {},
            "harness": last.get("harness"),
            "int8": last.get("int8"),
        },
        "input": manifest.get("input") or {},
        "output": manifest.get("output") or {},
        "latency": {
            "median_ms": arm.median,
            "interval_ms": [arm.low, arm.high],
            "interval": (
                f"anytime-valid {100 * (1 - race.alpha):g}% confidence sequence of the median "
                f"(order statistics, union bound over looks and {len(race.arms)} candidates)"
            ),
            "budget_ms": race.budget_ms,
            "samples": arm.n,
            "records": len(records),
            "load_ms": last.get("load_ms"),
            "first_run_ms": last.get("first_run_ms"),
        },
        "device": {k: dev.get(k) for k in DEVICE_KEYS if dev.get(k) is not None},
        "memory": {
            "peak_rss_growth_mb": max(peak) if peak else None,
            "definition": next((m.get("definition") for m in mem if m.get("definition")), None),
            "pss_mb": next((m.get("pss_mb") for m in reversed(mem) if m.get("pss_mb") is not None), None),
        },
        "size_mb": round(sum(f["bytes"] or 0 for f in files) / 1e6, 3) if files else None,
        "parity": last.get("parity") or {},
        "accuracy": evidence.to_dict(),
        "reproduce": {
            "choose": command,
            "bench": (
                f"mobileseg bench --device {_device_arg(dev)} --threads {cand.threads} --models "
                f"{cand.model} --res {h}x{w} --runtimes {cand.runtime} --precisions {cand.precision} "
                f"--graphs {cand.graph} --target-ci 1"
            ),
        },
        "results_file": str(results_file or last.get("_file") or ""),
    }


def _device_arg(dev: dict) -> str:
    return "local" if dev.get("kind", "local") == "local" else f"adb:{dev.get('serial')}"


def write(card: dict, out_dir) -> list:
    """Write ``card.json`` and ``card.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "card.json", out / "card.md"
    js.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    md.write_text(markdown(card), encoding="utf-8")
    return [js, md]


def _f(v, fmt="{:.3g}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(card: dict) -> str:
    c, lat, inp, acc = card["candidate"], card["latency"], card["input"], card["accuracy"]
    h, w = c["resolution"]
    title = f"{c['model']} {h}x{w}, {c['runtime']} {c['precision']}"
    lines = [f"# Deployment card: {title}", ""]
    if card["decision"] != "chosen":
        lines += [
            f"**Not a decision**: tied with {', '.join(card['tied_with']) or 'others'} (see the choose report).",
            "",
        ]
    par = card["parity"]
    parity = (
        "not checked"
        if par.get("checked") is False
        else f"rel L2 {_f(par.get('rel_l2'), '{:.2e}')} (limit {_f(par.get('limit_rel_l2'), '{:.0e}')}), argmax "
        f"agreement {_f(par.get('argmax_agree'), '{:.4f}')}, {'ok' if par.get('ok') else 'FAILED'}"
    )
    settings = ", ".join(f"{k}={v}" for k, v in sorted((card["runtime"]["settings"] or {}).items()))
    rows = [
        ("artifact", f"`{card['artifact']['model_file']}`"),
        ("sha256", f"`{card['artifact']['sha256']}`"),
        ("size", f"{_f(card['size_mb'])} MB"),
        ("runtime", f"{card['runtime']['name']} {card['runtime']['version'] or ''} ({card['runtime']['harness']})"),
        ("settings", settings or "-"),
        (
            "input",
            f"{inp.get('name')} {inp.get('shape')} {inp.get('dtype')} {inp.get('layout')}, RGB 0..255, "
            f"mean {inp.get('mean')}, std {inp.get('std')}",
        ),
        ("output", f"{card['output'].get('name')} {card['output'].get('shape')} ({c['graph']})"),
        (
            "latency",
            f"median {_f(lat['median_ms'])} ms, interval [{_f(lat['interval_ms'][0])}, "
            f"{_f(lat['interval_ms'][1])}] ms ({lat['interval']}), {lat['samples']} samples, budget "
            f"{lat['budget_ms']:g} ms",
        ),
        ("device", ", ".join(f"{k} {v}" for k, v in card["device"].items())),
        (
            "memory",
            f"peak RSS growth {_f(card['memory']['peak_rss_growth_mb'])} MB"
            + (f", PSS {_f(card['memory']['pss_mb'])} MB" if card["memory"].get("pss_mb") is not None else ""),
        ),
        ("parity", parity),
        (
            "accuracy",
            f"{_f(acc.get('miou'), '{:.1f}')} mIoU: {acc['source']}" if acc.get("miou") is not None else acc["source"],
        ),
        ("reproduce", f"`{card['reproduce']['bench']}`"),
        ("choose", f"`{card['reproduce']['choose']}`"),
    ]
    lines += ["| field | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows] + [""]
    return "\n".join(lines)
