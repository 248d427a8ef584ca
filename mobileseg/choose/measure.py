"""The one adapter between ``mobileseg choose`` and the bench stage: "measure this candidate for n more samples".

Every call is one :func:`mobileseg.bench.run_bench` of one cell with ``repeats=n`` on a target opened once, so each
measurement is a normal bench record appended to the results store (``report``, ``compare`` and ``results`` read a
choose run as any other; ``--resume`` pools the samples of the records already there). Exports happen in
:meth:`BenchMeasure.prepare`, before the race's clock starts, through the export stage (cached; int8 with
``--calib`` when given).

Interface (all the race needs): ``open()``, ``usable_runtimes(names, explicit)``, ``prepare(candidate) ->
(folder, manifest)``, ``measure(candidate, n) -> record dict``, ``earlier(candidate) -> [record dicts]``,
``close()``; ``device`` (the record's device dict), ``emulated``, ``path`` (the results file).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingDependencyError, MobilesegError

WARMUP_FIRST = 5  # before a candidate's first batch; later batches reload the session, so they warm up too
WARMUP_LATER = 2


class BenchMeasure:
    def __init__(
        self,
        device: str = "local",
        threads: int = 1,
        out_dir=None,
        results_file=None,
        export_root="export",
        target_options: dict | None = None,
        cpu: int | None = None,
        calib=None,
        target=None,
    ) -> None:
        self.device_arg, self.threads, self.out_dir = device, int(threads), out_dir
        self.results_file, self.export_root = results_file, Path(export_root)
        self.target_options, self.cpu, self.calib = dict(target_options or {}), cpu, calib
        self.target, self._own = target, target is None
        self._exports: dict = {}
        self._batches: dict = {}
        self.path: Path | None = None

    def open(self) -> None:
        from ..bench.runner import results_file_for
        from ..bench.targets import open_target
        from ..results.paths import RUNS_DIR
        from ..results.store import ResultStore

        if self.target is None:
            cpu = {"cpu": self.cpu} if self.cpu is not None else {}
            self.target = open_target(self.device_arg, **{**self.target_options, **cpu})
        self.device = self.target.describe()
        self.device_id = self.target.device_id()
        self.emulated = bool(self.target.emulated)
        self.path = (
            Path(self.results_file)
            if self.results_file
            else results_file_for(self.target, self.threads, self.out_dir or RUNS_DIR)
        )
        ResultStore(self.path).check_writable()

    def usable_runtimes(self, names, explicit: bool) -> tuple[list, list]:
        """``(runtimes this device runs, notes)``; a named runtime that cannot run is one sentence."""
        usable, notes = [], []
        for rt in names:
            try:
                self.target.check_runtime(rt)
                usable.append(rt)
            except MissingDependencyError as exc:
                if explicit:
                    raise MissingDependencyError(
                        f"runtime '{rt}' cannot run here: {exc}; or leave it out of --runtimes"
                    ) from None
                notes.append(f"runtime '{rt}' does not run here: its candidates are left out")
        return usable, notes

    def _export(self, model, resolution, formats, precision, graph, out):
        key = (model, tuple(resolution), precision, graph, tuple(formats))
        if key not in self._exports:
            from ..export import export_model

            kw = {"calib": self.calib} if precision == "int8" and self.calib else {}
            self._exports[key] = export_model(
                model, list(resolution), formats=list(formats), precision=precision, graph=graph, out=out, **kw
            )
        return self._exports[key]

    def prepare(self, cand) -> tuple[Path, dict]:
        """Export (or reuse) the candidate's artifact; its folder and manifest (the race clock does not run)."""
        from ..bench.model_cells import ensure_export

        return ensure_export(cand.cell(), [cand.format], self.export_root, self._export, {})

    def measure(self, cand, n: int) -> dict:
        """Time ``cand`` for ``n`` samples on the target; the bench record (also appended to :attr:`path`)."""
        from ..bench.runner import run_bench

        first = self._batches.get(cand.id, 0) == 0
        self._batches[cand.id] = self._batches.get(cand.id, 0) + 1
        run = run_bench(
            models=[cand.model],
            resolutions=[f"{cand.resolution[0]}x{cand.resolution[1]}"],
            runtimes=[cand.runtime],
            precisions=[cand.precision],
            graphs=[cand.graph],
            threads=self.threads,
            warmup=WARMUP_FIRST if first else WARMUP_LATER,
            repeats=int(n),
            target=self.target,
            results_file=self.path,
            export_root=self.export_root,
            export_fn=self._export,
            progress=False,
            measure_reference=False,
        )
        if not run:
            raise MobilesegError(f"the bench stage measured nothing for {cand.id}")
        return run[0]

    def earlier(self, cand) -> list:
        """The finished records of this candidate already in the results file (``--resume``), oldest first."""
        from ..results.store import ResultStore

        key = cand.cell().key(self.device_id)
        return [r for r in ResultStore(self.path).read() if r.get("id") == key and r.get("status") != "error"]

    def close(self) -> None:
        if self._own and self.target is not None:
            self.target.close()
            self.target = None
