"""The accuracy evidence of each candidate, always named: measured, published, or "accuracy not measured".

* ``--data DIR``: the candidate's own artifact evaluated on that folder by :func:`mobileseg.eval.evaluate.evaluate`
  (int8 with ``--calib``; the eval stage runs the format's host runtime). Measured wins over everything else.
* Without it, an fp32 candidate at the resolution its paper published takes the published mIoU
  (``results/published.csv`` through :mod:`mobileseg.report.published`).
* Anything else (int8 or fp16 without data, or another resolution) is "accuracy not measured": the race never ranks
  it above a measured one (:mod:`mobileseg.choose.race`); the fp32 number is kept only as a proxy to order the
  unmeasured ones among themselves, and :attr:`Evidence.settle` says what ``--data`` would settle.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Evidence:
    kind: str  # measured | published | none
    miou: float | None  # what the ranking may use (None for kind "none")
    source: str  # in words, for the table and the card
    proxy: float | None = None
    settle: str | None = None
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "miou": self.miou,
            "source": self.source,
            "proxy_miou": self.proxy,
            "settle": self.settle,
            **self.detail,
        }


def published_table():
    """The published numbers, or None when the report extra (pandas) or the CSV is missing."""
    try:
        from ..report.published import load_published

        return load_published()
    except Exception:  # MissingDependency, PublishedDataError: choose still runs, every candidate unmeasured
        return None


def published(cand, table) -> Evidence:
    """Evidence from the papers alone."""
    from ..registry import get_spec

    miou, source, at = (None, None, None)
    if table is not None:
        from ..report.published import lookup_miou_at

        miou, source, at = lookup_miou_at(table, cand.model, get_spec(cand.model).dataset, cand.resolution)
    res = f"{cand.resolution[0]}x{cand.resolution[1]}"
    if miou is None:
        why = (
            "no published mIoU for this model"
            if table is not None
            else "the published numbers need pandas: pip install 'mobileseg[report]'"
        )
        return Evidence("none", None, f"accuracy not measured ({why})", settle="--data DIR would measure it")
    if cand.precision == "fp32" and at == res:
        return Evidence("published", miou, f"published fp32 mIoU ({source}, {at})")
    why = f"{cand.precision} was never published" if cand.precision != "fp32" else f"published at {at}, not at {res}"
    extra = " with --calib DIR" if cand.precision == "int8" else ""
    return Evidence(
        "none",
        None,
        f"accuracy not measured ({why}; fp32 published {miou:g} at {at})",
        proxy=miou,
        settle=f"--data DIR{extra} would measure this {cand.precision} artifact's own mIoU",
    )


def measured(cand, data, calib=None, export_root="export/eval", limit=None, cache=None, progress=False) -> Evidence:
    """Evidence from evaluating the candidate's artifact on ``data`` (one eval per model x size x format x
    precision, cached in ``cache``)."""
    from .. import formats
    from ..eval.evaluate import evaluate

    key = (cand.model, tuple(cand.resolution), cand.format, cand.precision)
    cache = {} if cache is None else cache
    if key not in cache:
        rt = formats.host_runtime(cand.format)
        cache[key] = evaluate(
            cand.model,
            data,
            fmt=cand.format,
            res=f"{cand.resolution[0]}x{cand.resolution[1]}",
            runtime=rt,
            precision=cand.precision,
            limit=limit,
            export_root=export_root,
            progress=progress,
            **({"calib": calib} if cand.precision == "int8" else {}),
        )
    rec = cache[key]
    weights = (rec.get("weights") or {}).get("path")
    note = "" if weights else "; random weights: this mIoU says nothing about a trained model"
    src = (
        f"measured on {rec['images']} {rec['dataset']} images ({rec['format']} {rec.get('precision', 'fp32')} "
        f"via {rec['runtime']} on the host{note})"
    )
    detail = {
        "images": rec["images"],
        "dataset": rec["dataset"],
        "eval_runtime": rec["runtime"],
        "miou_delta_vs_fp32": rec.get("miou_delta"),
        "calibration": calib if cand.precision == "int8" else None,
    }
    return Evidence("measured", float(rec["miou"]), src, detail=detail)
