"""The candidates of ``mobileseg choose``: model x resolution x runtime x precision (x graph, where asked).

Defaults (the issue's): every registered segmentation model at its paper resolution (``spec.default_resolution``),
on every runtime the device runs (the caller passes that list, :func:`mobileseg.choose.measure.usable_runtimes`),
in fp32 and every other precision that runtime's format has (``mobileseg.formats``). Names are checked by the
bench stage's own validator (:func:`mobileseg.bench.suite.build_group`), so a typo gets the same sentence there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import formats
from ..bench.suite import Cell
from ..errors import MobilesegError


class CandidateError(MobilesegError):
    pass


@dataclass(frozen=True)
class Candidate(Cell):
    """A bench cell raced by ``choose`` (the cell's fields and key; a label of its own)."""

    @property
    def id(self) -> str:
        """A short unique label: ``topformer-t 512x512 ncnn int8`` (``argmax`` added when it is that graph)."""
        h, w = self.resolution
        return " ".join(
            [self.model, f"{h}x{w}", self.runtime, self.precision] + ([self.graph] if self.graph != "logits" else [])
        )

    def cell(self) -> Cell:
        return Cell(self.model, tuple(self.resolution), self.runtime, self.precision, self.graph, self.threads)


def plan(
    models=None,
    resolutions=None,
    runtimes=(),
    precisions=None,
    graphs=None,
    threads: int = 1,
    explicit_runtimes: bool = False,
) -> tuple[list, list]:
    """``(candidates, notes)``. ``runtimes``: those to use (already checked against the device). Precisions a
    runtime's format lacks are left out with a note; a named runtime with none of the named precisions, or no
    candidate at all, is one sentence."""
    from ..bench.suite import build_group
    from ..registry import get_spec, list_models

    models = list(models or list_models(task="segmentation"))
    group = build_group(
        models,
        list(resolutions or []),
        list(runtimes),
        list(precisions or ["fp32"]),
        list(graphs or ["logits"]),
        where="choose",
    )
    out, notes = [], []
    for rt in group["runtimes"]:
        have = formats.FORMATS[formats.runtime_format(rt)].precisions
        wanted = [p for p in group["precisions"] if p in have] if precisions else list(have)
        lacking = [p for p in group["precisions"] if p not in have] if precisions else []
        if not wanted:
            if explicit_runtimes:
                raise CandidateError(
                    f"runtime {rt} has no {' or '.join(lacking)} artifacts (its format has "
                    f"{', '.join(have)}): drop it from --runtimes or add one of those precisions"
                )
            notes.append(f"{rt}: no {'/'.join(lacking)} artifacts, left out")
            continue
        if lacking:
            notes.append(f"{rt}: no {'/'.join(lacking)} artifacts; only {', '.join(wanted)}")
        for m in group["models"]:
            res_list = group["resolutions"] or [tuple(get_spec(m).default_resolution)]
            for res in res_list:
                for p in wanted:
                    for g in group["graphs"]:
                        c = Candidate(m, tuple(res), rt, p, g, int(threads))
                        if c not in out:
                            out.append(c)
    if not out:
        raise CandidateError("no candidate is left: widen --models/--runtimes/--precisions")
    return out, notes
