"""``BenchSettings``: every bench option in one frozen object, validated once, for every path.

The command line (``mobileseg.commands.bench.settings_from_args``) and the Python API (``run_bench(**options)``,
``BenchSettings(...)``) build the same object, and every path of the bench (registered models, files users bring,
a suite mixing both, one ADB device or several) reads its options from it. An option a path cannot honour is
refused here, in one sentence (:class:`~mobileseg.errors.MobilesegError`), before anything is exported or timed;
none is dropped. The suite's ``[settings]`` fill what the options leave open (:meth:`BenchSettings.timing`).

Adding a bench flag: a field here (with its check in ``_validate``), the argparse option and its line in
``settings_from_args`` in ``mobileseg/commands/bench.py``, its use in the loop (:mod:`mobileseg.bench.runner`) and a row in
``tests/test_bench_flags.py`` (that test fails for a flag without one).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..errors import MobilesegError
from ..results.paths import RUNS_DIR

DEFAULT_WARMUP = 5
DEFAULT_REPEATS = 20


def _several(device: str) -> bool:
    """Whether ``--device`` names several ADB devices (``adb:S1,S2`` / ``adb:all`` / the devices of several
    servers, ``adb@S1,adb@S2``)."""
    if not str(device or "").startswith(("adb:", "adb@")):
        return False
    from ..device.selection import parse_device_arg

    return parse_device_arg(device).several


def _tuple(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class Timing:
    """How each cell is timed once the suite's ``[settings]`` are merged in (see :meth:`BenchSettings.timing`)."""

    warmup: int
    repeats: int | None
    min_time: float | None
    target_ci: float | None = None
    max_time: float | None = None
    sustained: float | None = None
    sustained_minute_s: float | None = None
    cooldown_s: float = 0.0

    def sampling(self):
        """A fresh :class:`~mobileseg.bench.sampling.SamplingRule` for one cell (it keeps the cell's stop state),
        or None without ``--target-ci``."""
        if self.target_ci is None:
            return None
        from .sampling import SamplingRule

        return SamplingRule(repeats=self.repeats, target_ci=self.target_ci, max_time=self.max_time)


@dataclass(frozen=True)
class BenchSettings:
    """The options of one bench run (the command line's flags, by their Python names)."""

    # what to measure: registered models (or a suite's groups) ...
    models: tuple = ()
    resolutions: tuple = ()
    runtimes: tuple = ()
    precisions: tuple = ()
    graphs: tuple = ()
    suite: object = None  # a suite file path or a Suite
    # ... or files users bring (--artifact), with their input and reference
    artifacts: tuple = ()
    input_shape: str | None = None
    input: str | None = None
    reference: str | None = None
    # where
    device: str = "local"
    adb_servers: tuple = ()  # --adb-server NAME=HOST:PORT: the adb servers of a lab on several hosts
    cpu: int | None = None
    harness: str = "auto"
    adb_transport: str = "auto"
    tflite_benchmark: str | None = None
    ort_perf_test: str | None = None
    # how each cell is timed
    threads: int | None = None  # None: the suite's [settings] threads, else 1
    warmup: int | None = None
    repeats: int | None = None
    min_time: float | None = None
    target_ci: float | None = None
    max_time: float | None = None
    sustained: float | None = None
    sustained_minute_s: float | None = None
    profile: bool = False
    cooldown: float | None = None
    measure_reference: bool = True  # --no-sgemm: False
    # where the records go
    resume: bool = False
    out_dir: object = RUNS_DIR
    results_file: object = None
    export_root: object = "export"
    no_export: bool = False  # use the export folders in export_root as they are (never run the export stage)
    progress: object = True  # bool, or a Progress to report to

    def __post_init__(self) -> None:
        for name in ("models", "resolutions", "runtimes", "precisions", "graphs", "artifacts", "adb_servers"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        object.__setattr__(self, "artifacts", tuple(p for p in self.artifacts if str(p).strip()))
        self._validate()

    # -- building ------------------------------------------------------------------------------------------------
    @classmethod
    def of(cls, **options) -> "BenchSettings":
        """From keyword options, accepting the older Python names (``cooldown_s``, ``target_options``)."""
        if "cooldown_s" in options:
            options["cooldown"] = options.pop("cooldown_s")
        for k, v in (options.pop("target_options", None) or {}).items():
            options.setdefault(k, v)
        known = {f.name for f in fields(cls)}
        bad = sorted(set(options) - known)
        if bad:
            raise TypeError(f"unknown bench option(s): {', '.join(bad)}")
        return cls(**options)

    def but(self, **changes) -> "BenchSettings":
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    # -- reading -------------------------------------------------------------------------------------------------
    @property
    def several_devices(self) -> bool:
        return _several(self.device)

    @property
    def on_host(self) -> bool:
        return (self.device or "local").strip() in ("local", "host")

    def target_options(self) -> dict:
        """The :func:`~mobileseg.bench.targets.open_target` options that differ from the defaults."""
        opts = {}
        if (self.harness or "auto") != "auto":
            opts["harness"] = self.harness
        if (self.adb_transport or "auto") != "auto":
            opts["adb_transport"] = self.adb_transport
        for key in ("tflite_benchmark", "ort_perf_test"):
            if getattr(self, key):
                opts[key] = getattr(self, key)
        if self.adb_servers:
            opts["adb_servers"] = list(self.adb_servers)
        if self.cpu is not None:
            opts["cpu"] = self.cpu
        return opts

    def timing(self, suite_settings: dict | None = None) -> Timing:
        """The timing of each cell: these options, else the suite's ``[settings]``, else the defaults (5 warm-up
        runs, 20 timed runs). With ``--target-ci`` the suite's counts are not used (``--repeats`` is the minimum)."""
        s = suite_settings or {}
        warmup = int(self.warmup if self.warmup is not None else s.get("warmup", DEFAULT_WARMUP))
        repeats, min_time = self.repeats, self.min_time
        if self.target_ci is None and self.sustained is None and repeats is None and min_time is None:
            repeats, min_time = s.get("repeats"), s.get("min_time")
            if repeats is None and min_time is None:
                repeats = DEFAULT_REPEATS
        cooldown = float(self.cooldown if self.cooldown is not None else s.get("cooldown_s", 0))
        return Timing(
            warmup=warmup,
            repeats=None if repeats is None else int(repeats),
            min_time=None if min_time is None else float(min_time),
            target_ci=self.target_ci,
            max_time=self.max_time,
            sustained=self.sustained,
            sustained_minute_s=self.sustained_minute_s,
            cooldown_s=cooldown,
        )

    # -- the one place each option is checked --------------------------------------------------------------------
    def _validate(self) -> None:
        from ..runtimes.base import check_threads

        if self.threads is not None:
            object.__setattr__(self, "threads", check_threads(self.threads))
        self._check_counts()
        self._check_sampling()
        self._check_what()
        self._check_where()

    def _check_counts(self) -> None:
        if self.repeats is not None and self.min_time is not None:
            raise MobilesegError("give either --repeats or --min-time, not both")
        if self.repeats is not None and int(self.repeats) < 1:
            raise MobilesegError(f"--repeats must be at least 1, not {self.repeats}")
        if self.warmup is not None and int(self.warmup) < 0:
            raise MobilesegError(f"--warmup must be 0 or more, not {self.warmup}")
        if self.min_time is not None and not float(self.min_time) > 0:
            raise MobilesegError(f"--min-time must be a number of seconds above 0, not {self.min_time:g}")
        if self.cooldown is not None and float(self.cooldown) < 0:
            raise MobilesegError(f"--cooldown must be 0 or more seconds, not {self.cooldown:g}")

    def _check_sampling(self) -> None:
        if self.target_ci is not None and self.min_time is not None:
            raise MobilesegError("give --target-ci (with --max-time) or --min-time, not both")
        if self.target_ci is None and self.max_time is not None:
            raise MobilesegError("--max-time bounds --target-ci sampling: give --target-ci PCT too (or use --min-time)")
        if self.target_ci is not None:
            from .sampling import SamplingRule

            SamplingRule(
                repeats=self.repeats,
                target_ci=float(self.target_ci),
                max_time=None if self.max_time is None else float(self.max_time),
            )  # its own range checks
        if self.sustained is None:
            if self.sustained_minute_s is not None:
                raise MobilesegError("--sustained-minute-s sets the minute of --sustained: give --sustained too")
            return
        if not float(self.sustained) > 0:
            raise MobilesegError(f"--sustained takes a number of minutes above 0, not {self.sustained:g}")
        given = [
            f
            for f, v in (("--repeats", self.repeats), ("--min-time", self.min_time), ("--target-ci", self.target_ci))
            if v is not None
        ]
        if given:
            raise MobilesegError(f"--sustained times each cell for whole minutes: drop {' and '.join(given)}")
        from .sustained import minute_seconds

        minute_seconds(self.sustained_minute_s)

    def _check_what(self) -> None:
        if self.artifacts:
            if self.no_export:
                raise MobilesegError(
                    "--no-export keeps registered models' export folders as they are: files given "
                    "with --artifact are never exported, drop it"
                )
            if self.suite or self.models or self.resolutions or self.graphs:
                raise MobilesegError(
                    "--artifact benches the given files: drop --suite, --models, --res and --graphs "
                    "(the files fix the model and its input size)"
                )
            return
        for opt in ("input_shape", "input", "reference"):
            if getattr(self, opt):
                raise MobilesegError(
                    f"--{opt.replace('_', '-')} goes with --artifact PATH (a model file mobileseg did not write)"
                )

    def _check_where(self) -> None:
        from .targets import check_target_options

        check_target_options(self.device, self.target_options())
        if not self.on_host and not self.measure_reference:
            raise MobilesegError(
                "--no-sgemm skips timing this host's SGEMM rate, which only --device local measures: drop it"
            )
        if self.several_devices:
            self.check_several_devices()

    def check_several_devices(self) -> None:
        """Refuse what several devices cannot share (the fleet calls it too, for devices given by the API)."""
        if self.results_file:
            raise MobilesegError(
                "--results-file names one file, and several devices each write their own "
                "(<out>/<device>-t<threads>.jsonl): leave it out, or choose the folder with --out"
            )
