"""The measurement record (contract 4): one JSON object per measurement cell in ``results/*.jsonl``.

A record is plain data so that the report stage needs neither torch nor any runtime to read it. ``LatencyRecord``
names every field once; ``to_dict`` gives the JSON object written to the store and ``from_dict`` reads one back
(unknown keys from a newer writer are kept in ``extra`` rather than dropped).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .stats import STATS_KEYS

SCHEMA_VERSION = 1

STATUSES = ("ok", "parity_failed", "error")
HARNESSES = ("python-inproc", "device-python", "native-ncnn", "benchmark_model", "onnxruntime_perf_test")
TIMINGS_ONLY_HARNESSES = ("benchmark_model", "onnxruntime_perf_test")  # official binaries: no output, no parity


def cell_key(
    device: str, model: str, resolution, fmt: str, runtime: str, precision: str, graph: str, threads: int
) -> str:
    """The identity of a measurement cell: ``device|model|HxW|format|runtime|precision|graph|threads``.

    ``--resume`` skips a cell whose key already has a finished record in the store.
    """
    h, w = resolution
    return f"{device}|{model}|{h}x{w}|{fmt}|{runtime}|{precision}|{graph}|t{int(threads)}"


@dataclass
class LatencyRecord:
    """One measured cell. Field meanings are those of ``docs/ARCHITECTURE.md``, contract 4."""

    id: str
    model: str
    resolution: list
    format: str
    runtime: str
    precision: str = "fp32"
    graph: str = "logits"
    threads: int = 1
    runtime_version: str | None = None
    runtime_settings: dict = field(default_factory=dict)
    affinity: list = field(default_factory=list)
    device: dict = field(default_factory=dict)
    device_state: dict = field(default_factory=dict)
    emulated: bool = False
    harness: str = "python-inproc"
    warmup: int = 0
    stats_ms: dict = field(default_factory=dict)
    samples_ms: list = field(default_factory=list)
    overhead_ms: float | None = None
    parity: dict = field(default_factory=lambda: {"checked": False})
    gflops: float | None = None
    params: int | None = None
    versions: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    artifact: dict = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    timestamp: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, not {self.status!r}")
        self.resolution = [int(v) for v in self.resolution]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyRecord":
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)


REQUIRED_KEYS = tuple(f.name for f in fields(LatencyRecord) if f.name != "extra")


def validate_record(d: dict) -> list[str]:
    """Problems with a record dict read from a store (empty list: valid). Used by tests and ``mobileseg results``."""
    problems = [f"missing key '{k}'" for k in REQUIRED_KEYS if k not in d]
    if problems:
        return problems
    if d["status"] not in STATUSES:
        problems.append(f"status {d['status']!r} is not one of {STATUSES}")
    if d["status"] != "error" and d["harness"] not in HARNESSES:
        problems.append(f"harness {d['harness']!r} is not one of {HARNESSES}")
    if d["status"] != "error":
        st = d["stats_ms"]
        for k in STATS_KEYS:
            if k not in st:
                problems.append(f"stats_ms lacks '{k}'")
        if d["samples_ms"] or d.get("stats_source", "samples") == "samples":
            if st.get("count") != len(d["samples_ms"]):
                problems.append("stats_ms.count differs from the number of samples")
        else:  # timings-only tools without per-iteration times: stats_ms is the tool's own summary
            if d["harness"] not in TIMINGS_ONLY_HARNESSES:
                problems.append(
                    f"only {' and '.join(TIMINGS_ONLY_HARNESSES)} records may lack samples, not {d['harness']!r}"
                )
            if not isinstance(st.get("count"), int) or st["count"] < 1:
                problems.append("stats_ms.count of a tool summary is not a positive integer")
            if st.get("median") is None and st.get("mean") is None:
                problems.append("stats_ms of a tool summary has neither a median nor a mean")
        if d["harness"] in TIMINGS_ONLY_HARNESSES and d["parity"].get("checked") is not False:
            problems.append(f"{d['harness']} gives timings only, so parity must be {{'checked': false}}")
        if "checked" not in d["parity"] and "rel_l2" not in d["parity"]:
            problems.append("parity has neither figures nor checked=false")
    if len(d["resolution"]) != 2:
        problems.append("resolution is not [H, W]")
    dev = d["device"] if isinstance(d["device"], dict) else {}
    if dev.get("transport") == "adb-server" and not (dev.get("adb") or {}).get("adb_server"):
        # several servers can measure in one run (a lab on several hosts): each record names the one it came through
        problems.append("a record measured through an adb server does not name it (device.adb.adb_server)")
    return problems
