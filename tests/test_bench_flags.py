"""Every ``mobileseg bench`` flag on every path: the records show the flag's effect, or the command refuses it in
one sentence. Never dropped.

The paths: registered models on the host, ``--artifact`` files on the host, a suite mixing a group of files and a
model group, one ADB device and two ADB devices at once (scripted devices answering the probe, a fake harness
driver). The flags are read from the argparse parser: a flag added without a row in ``ROWS`` fails
:func:`test_every_bench_flag_has_a_row`. Runtimes and exports are fakes (the real ones run in their own tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeRuntime
from test_adb_target import ScriptedDevice

from mobileseg import manifest as _manifest
from mobileseg.cli import build_parser, main
from mobileseg.device.harness_driver import HarnessDriver

PATHS = ("host-models", "host-artifact", "suite", "adb-one", "adb-several")
HOST = ("host-models", "host-artifact", "suite")
ADB = ("adb-one", "adb-several")
ART = ("host-artifact",)  # paths whose baseline is --artifact
FIX = Path(__file__).parent / "fixtures" / "official_tools"


# -- the world: fake export, runtime, devices and harness ---------------------------------------------------------
def fake_export(model, res, formats, precision, graph, out, **_):
    h, w = res
    os.makedirs(os.path.join(out, "reference"), exist_ok=True)
    x = np.random.default_rng(h).standard_normal((1, 3, h, w)).astype(np.float32)
    np.save(os.path.join(out, _manifest.REFERENCE_INPUT), x)
    np.save(os.path.join(out, _manifest.REFERENCE_OUTPUT), x[:, :1])  # what the fake runtime returns
    names = {"onnx": "model.onnx", "tflite": "model.tflite", "ncnn": "model.ncnn.param", "torch": "model.pt"}
    entries = {}
    sha = {b"model": hashlib.sha256(b"model").hexdigest(), b"weights": hashlib.sha256(b"weights").hexdigest()}
    for f in formats:
        Path(out, names[f]).write_bytes(b"model")
        files = [{"path": names[f], "sha256": sha[b"model"]}]  # the bench checks them before loading
        if f == "ncnn":
            Path(out, "model.ncnn.bin").write_bytes(b"weights")
            files.append({"path": "model.ncnn.bin", "sha256": sha[b"weights"]})
        entries[f] = {"ok": True, "files": files}
    man = {
        "schema_version": 1,
        "model": model,
        "resolution": [h, w],
        "num_classes": 5,
        "graph": graph,
        "precision": precision,
        "complexity": {"gmacs": 0.1, "params": 1000},
        "formats": entries,
    }
    Path(out, "manifest.json").write_text(json.dumps(man))
    return man


class Device(ScriptedDevice):
    """A scripted device (probe and state answers) that keeps what was pushed and answers the official tools."""

    def __init__(self, serial: str, transport: str, server=None):
        super().__init__()
        self.serial, self.transport, self.server = serial, transport, server
        self.files: dict = {}

    def transport_info(self):
        lab = {"adb_server_name": self.server[0], "adb_server": self.server[1]} if self.server else {}
        return {"transport": "adb-direct" if self.transport == "direct" else "adb-server", "serial": self.serial, **lab}

    def shell(self, cmd, timeout=None):
        if "benchmark_model-" in cmd:
            return 0, (FIX / "benchmark_model_arm64_t1.txt").read_text()
        if "perf_test-" in cmd and "rm -f" not in cmd:
            return 0, (FIX / "onnxruntime_perf_test_stdout.txt").read_text()
        return super().shell(cmd, timeout)

    def push(self, local, remote, timeout=None, local_sha256=None, **_):
        self.files[str(remote)] = Path(local)
        return super().push(local, remote, timeout, local_sha256)

    def pull(self, remote, local, timeout=None):
        shutil.copy(FIX / "onnxruntime_perf_test_results.csv", local)
        return Path(local)


class FlagDriver(HarnessDriver):
    """The device harness: the fake runtime's output (the first input channel), and what it was asked, echoed."""

    name = "device-python"
    adaptive_sampling = True

    def run(self, device, cell, artifact, *, mask, warmup, repeats, min_time, timeout, sampling=None):
        x = np.load(device.files[artifact["input"]])
        n = repeats or (sampling.min_repeats if sampling is not None else 5)
        info = {
            "runtime_version": "1",
            "affinity": [int(mask, 16).bit_length() - 1],
            "settings": {"threads": cell.threads, "warmup": warmup, "repeats": repeats, "min_time": min_time},
        }
        if sampling is not None:
            info["sampling"] = {"stopped": "fake"}
        return [1.0 + 0.01 * k for k in range(n)], x[:, :1], info

    def op_profile(self, device, cell, artifact, *, mask, timeout=3600.0, runs=10):
        return "profile_ops", {"runs": 1, "times": {"conv": [1.0]}, "types": {"conv": "Convolution"}}


class NativeFlagDriver(FlagDriver):
    name = "native-ncnn"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model files from another tool (torch.onnx.export), the suite, and the input/reference pair."""
    pytest.importorskip("onnx")
    from artifact_fixtures import write_onnx

    d = tmp_path_factory.mktemp("flag-files")
    tiny = write_onnx(d, "tiny.onnx")
    dyn = write_onnx(d, "dyn.onnx", dynamic=True)
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(d / "in.npy", x)
    np.save(d / "ref.npy", x[:, :1])
    (d / "suite.toml").write_text(
        'name = "flags"\n\n[[cells]]\nartifacts = ["tiny.onnx"]\n\n[[cells]]\n'
        'models = ["topformer-t"]\nresolutions = [64, 128]\n'
        'runtimes = ["onnxruntime", "ncnn"]\ngraphs = ["logits", "argmax"]\n'
    )
    for tool in ("benchmark_model", "onnxruntime_perf_test"):
        (d / tool).write_bytes(b"#!/bin/sh\n")
    return {
        "tiny": str(tiny),
        "dyn": str(dyn),
        "in": str(d / "in.npy"),
        "ref": str(d / "ref.npy"),
        "suite": str(d / "suite.toml"),
        "bm": str(d / "benchmark_model"),
        "pt": str(d / "onnxruntime_perf_test"),
        "dir": d,
    }


@pytest.fixture
def world(monkeypatch, tmp_path):
    from mobileseg import export, runtimes
    from mobileseg.bench.targets import adb as adb_target
    from mobileseg.device import native, selection

    monkeypatch.setattr(export, "export_model", fake_export)
    monkeypatch.setattr(runtimes, "get_runtime", lambda name: FakeRuntime(call_ms=0.05))
    monkeypatch.setattr(adb_target, "PythonHarnessDriver", FlagDriver)
    monkeypatch.setattr(native, "NativeHarnessDriver", NativeFlagDriver)

    def open_devices(arg, transport="auto", servers=None, **_):
        if arg.startswith("adb@"):  # the lab: adb@NAME/S1,S2 with --adb-server NAME=HOST:PORT
            name, _, serials = arg[len("adb@") :].partition("/")
            where = dict(s.split("=", 1) for s in servers or [])[name]
            return [Device(s, transport, server=(name, where)) for s in serials.split(",")], []
        serials = arg.split(":", 1)[1].split(",")
        return [Device(s, transport) for s in serials], []

    monkeypatch.setattr(selection, "open_devices", open_devices)
    return tmp_path


# -- one run ------------------------------------------------------------------------------------------------------
def baseline(path: str, f: dict, tmp: Path) -> dict:
    """The options of ``path`` before a row changes them (option -> list of values; [] for a switch)."""
    models = {"-m": ["topformer-t"], "--res": ["64"], "--runtimes": ["onnxruntime,ncnn"]}
    base = {"--out": [str(tmp / "out")], "--export-dir": [str(tmp / "export")]}
    if path == "host-models":
        return {**base, "--device": ["local"], **models, "--no-sgemm": []}
    if path == "host-artifact":
        return {**base, "--device": ["local"], "--artifact": [f["tiny"]], "--no-sgemm": []}
    if path == "suite":
        return {**base, "--device": ["local"], "--suite": [f["suite"]], "--no-sgemm": []}
    serials = "phone1" if path == "adb-one" else "phone1,phone2"
    return {**base, "--device": [f"adb:{serials}"], **models}


@dataclass
class Outcome:
    rc: int
    records: list
    err: str
    out_dir: Path
    first_count: int | None = None  # records after the first of two runs (--resume)


def bench(capsys, options: dict) -> Outcome:
    argv = ["bench"]
    for k, v in options.items():
        argv += [k, *v]
    rc = main(argv)
    cap = capsys.readouterr()
    out_dir = Path(options["--out"][0])
    found = sorted(out_dir.glob("*.jsonl")) + [Path(p) for p in options.get("--results-file", [])]
    records = [json.loads(line) for p in found if p.exists() for line in p.read_text().splitlines() if line.strip()]
    return Outcome(rc, records, cap.err, out_dir)


# -- the rows ------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """``set``: options (a function of the files and the tmp folder) replacing the baseline's; ``drop``: baseline
    options removed; ``check(outcome, path, files)``: the flag's effect; ``refuse``: path -> words of the refusal."""

    set: object = None
    drop: tuple = ()
    check: object = None
    refuse: dict = field(default_factory=dict)
    twice: bool = False  # run the baseline first (--resume)


def each(o, pred) -> bool:
    return bool(o.records) and all(pred(r) for r in o.records)


def on_each_device(o) -> bool:
    return {r["device"]["serial"] for r in o.records} == {"phone1", "phone2"}


MODELS_SET = ("-m", "--res", "--runtimes")
REFUSE_ON_ADB_HOST_ONLY = "only --device local measures"
NOT_ON_HOST = "on the host there is none"
WITH_ARTIFACT = "goes with --artifact PATH"


def prepared_exports(f, t):
    """--no-export: export folders made beforehand and marked; the export stage must leave them as they are."""
    root = Path(t["--export-dir"][0])
    for res in (64, 128):
        for graph in ("logits", "argmax"):
            out = root / _manifest.export_dir_name("topformer-t", (res, res), "fp32", graph)
            man = fake_export("topformer-t", (res, res), ["onnx", "ncnn"], "fp32", graph, str(out))
            (out / "manifest.json").write_text(json.dumps({**man, "prepared": True}))
    return {"--no-export": []}


def exports_untouched(o, p, f) -> bool:
    mans = list((o.out_dir.parent / "export").glob("*/manifest.json"))
    return (
        each(o, lambda r: r["status"] == "ok")
        and bool(mans)
        and all(json.loads(m.read_text()).get("prepared") for m in mans)
    )


def edited_file(f, t):
    """--allow-edited: one exported file's bytes differ from its manifest's sha256 (edited on purpose)."""
    prepared_exports(f, t)
    (Path(t["--export-dir"][0]) / _manifest.export_dir_name("topformer-t", (64, 64)) / "model.onnx").write_bytes(
        b"edited"
    )
    return {"--allow-edited": [], "--no-export": []}


def lab_device(f, t):
    """--adb-server NAME=HOST:PORT with the devices named through it (adb@NAME/SERIAL)."""
    return {"--adb-server": ["lab=127.0.0.1:5037"], "--device": [t["--device"][0].replace("adb:", "adb@lab/")]}


ROWS = {
    "no_export": Row(set=prepared_exports, check=exports_untouched, refuse={"host-artifact": "never exported"}),
    "allow_edited": Row(
        set=edited_file,
        check=lambda o, p, f: any(r["format"] == "onnx" for r in o.records) and each(o, lambda r: r["status"] == "ok"),
        refuse={"host-artifact": "never exported"},
    ),
    "adb_server": Row(
        set=lab_device,
        check=lambda o, p, f: each(o, lambda r: r["device"]["adb"]["adb_server_name"] == "lab"),
        refuse={p: "--adb-server declares" for p in HOST},
    ),
    "device": Row(
        check=lambda o, p, f: (
            each(o, lambda r: r["device"]["kind"] == ("local" if p in HOST else "adb") and ("sgemm" not in r))
            and (p != "adb-several" or on_each_device(o))
        )
    ),
    "adb_transport": Row(
        set=lambda f, t: {"--adb-transport": ["direct"]},
        check=lambda o, p, f: each(o, lambda r: r["device"]["transport"] == "adb-direct"),
        refuse={p: NOT_ON_HOST for p in HOST},
    ),
    "threads": Row(set=lambda f, t: {"--threads": ["2"]}, check=lambda o, p, f: each(o, lambda r: r["threads"] == 2)),
    "models": Row(
        set=lambda f, t: {"-m": ["topformer-t" if "--suite" in t else "fcn-mbv2"]},
        check=lambda o, p, f: each(o, lambda r: r["model"] == ("topformer-t" if p == "suite" else "fcn-mbv2")),
        refuse={"host-artifact": "--artifact benches the given files"},
    ),
    "res": Row(
        set=lambda f, t: {"--res": ["128"]},
        check=lambda o, p, f: each(o, lambda r: r["resolution"] == [128, 128]),
        refuse={"host-artifact": "--artifact benches the given files"},
    ),
    "runtimes": Row(
        set=lambda f, t: {"--runtimes": ["ncnn"]},
        check=lambda o, p, f: each(o, lambda r: r["runtime"] == "ncnn"),
        refuse={"host-artifact": "names no runtime of tiny.onnx"},
    ),  # the file has no ncnn runtime
    "precisions": Row(
        set=lambda f, t: {"--precisions": ["fp16"]},
        check=lambda o, p, f: each(o, lambda r: r["precision"] == "fp16"),
        refuse={p: "does not change what onnxruntime runs" for p in ("host-artifact", "suite")},
    ),
    "graphs": Row(
        set=lambda f, t: {"--graphs": ["argmax"]},
        check=lambda o, p, f: each(o, lambda r: r["graph"] == "argmax"),
        refuse={"host-artifact": "--artifact benches the given files"},
    ),
    "suite": Row(
        set=lambda f, t: {"--suite": [f["suite"]]},
        drop=MODELS_SET,
        check=lambda o, p, f: (
            any(r.get("model_source") == "artifact" for r in o.records)
            and any(r["model"] == "topformer-t" and r["graph"] == "argmax" for r in o.records)
        ),
        refuse={"host-artifact": "--artifact benches the given files"},
    ),
    "warmup": Row(set=lambda f, t: {"--warmup": ["2"]}, check=lambda o, p, f: each(o, lambda r: r["warmup"] == 2)),
    "repeats": Row(
        set=lambda f, t: {"--repeats": ["7"]}, check=lambda o, p, f: each(o, lambda r: r["stats_ms"]["count"] == 7)
    ),
    "min_time": Row(
        set=lambda f, t: {"--min-time": ["0.01"]},
        check=lambda o, p, f: each(
            o,
            lambda r: (
                r["sampling"]["rule"] == "min-time"
                and r["sampling"]["min_time_s"] == 0.01
                and r["runtime_settings"].get("min_time", 0.01) == 0.01
            ),
        ),
    ),
    "target_ci": Row(
        set=lambda f, t: {"--target-ci": ["50"], "--max-time": ["0.5"]},
        check=lambda o, p, f: each(
            o, lambda r: r["sampling"]["rule"] == "target-ci" and r["sampling"]["target_ci_pct"] == 50
        ),
    ),
    "max_time": Row(
        set=lambda f, t: {"--target-ci": ["50"], "--max-time": ["0.5"]},
        check=lambda o, p, f: each(o, lambda r: r["sampling"]["max_time_s"] == 0.5),
    ),
    "sustained": Row(
        set=lambda f, t: {"--sustained": ["1"], "--sustained-minute-s": ["0.01"]},
        check=lambda o, p, f: each(
            o, lambda r: r["sustained"]["minutes"] == 1 and len(r["sustained"]["per_minute"]) == 1
        ),
    ),
    "sustained_minute_s": Row(
        set=lambda f, t: {"--sustained": ["1"], "--sustained-minute-s": ["0.01"]},
        check=lambda o, p, f: each(o, lambda r: r["sustained"]["minute_s"] == 0.01),
    ),
    "profile": Row(set=lambda f, t: {"--profile": []}, check=lambda o, p, f: each(o, lambda r: "profile" in r)),
    "cpu": Row(
        set=lambda f, t: {"--cpu": [str(min(os.sched_getaffinity(0))) if t["--device"] == ["local"] else "0"]},
        check=lambda o, p, f: each(
            o, lambda r: r["device"]["pinned_cpu"] == (min(os.sched_getaffinity(0)) if p in HOST else 0)
        ),
    ),
    "harness": Row(
        set=lambda f, t: {"--harness": ["native"]},
        check=lambda o, p, f: each(o, lambda r: r["harness"] == "native-ncnn"),
        refuse={p: "--harness native runs on ADB devices only" for p in HOST},
    ),
    "tflite_benchmark": Row(
        set=lambda f, t: {"--tflite-benchmark": [f["bm"]], "--runtimes": ["litert"]},
        check=lambda o, p, f: each(o, lambda r: r["harness"] == "benchmark_model"),
        refuse={p: "run official binaries built for a phone" for p in HOST},
    ),
    "ort_perf_test": Row(
        set=lambda f, t: {"--ort-perf-test": [f["pt"]], "--runtimes": ["onnxruntime"]},
        check=lambda o, p, f: each(o, lambda r: r["harness"] == "onnxruntime_perf_test"),
        refuse={p: "run official binaries built for a phone" for p in HOST},
    ),
    # two models (two files) in a row: the second's record says how the cooldown went
    "cooldown": Row(
        set=lambda f, t: (
            {"--cooldown": ["0.5"]}
            if "--suite" in t
            else {"--cooldown": ["0.5"], "--artifact": [f["tiny"], f["dyn"]], "--input-shape": ["1x3x32x32"]}
            if "--artifact" in t
            else {"--cooldown": ["0.5"], "-m": ["topformer-t,fcn-mbv2"], "--runtimes": ["onnxruntime"]}
        ),
        check=lambda o, p, f: any(r.get("cooldown", {}).get("limit_s") == 0.5 for r in o.records),
    ),
    "resume": Row(
        set=lambda f, t: {"--resume": []},
        twice=True,
        check=lambda o, p, f: o.first_count and len(o.records) == o.first_count,
    ),
    "out": Row(check=lambda o, p, f: bool(o.records) and all(q.parent == o.out_dir for q in o.out_dir.glob("*.jsonl"))),
    "results_file": Row(
        set=lambda f, t: {"--results-file": [str(Path(t["--out"][0]).parent / "one.jsonl")]},
        check=lambda o, p, f: bool(o.records) and not list(o.out_dir.glob("*.jsonl")),
        refuse={"adb-several": "--results-file names one file"},
    ),
    "export_dir": Row(check=lambda o, p, f: each(o, lambda r: "export" in Path(r["artifact"]["export_dir"]).parts)),
    "no_sgemm": Row(
        drop=("--no-sgemm",),
        check=lambda o, p, f: each(o, lambda r: r["sgemm"]["gflop_s"] > 0),
        set=lambda f, t: {"--no-sgemm": []} if "--no-sgemm" not in t else {},
        refuse={p: REFUSE_ON_ADB_HOST_ONLY for p in ADB},
    ),
    "quiet": Row(set=lambda f, t: {"-q": []}, check=lambda o, p, f: bool(o.records) and " running " not in o.err),
    "artifact": Row(
        set=lambda f, t: {"--artifact": [f["tiny"]]},
        drop=("-m", "--res"),
        check=lambda o, p, f: each(o, lambda r: r["model_source"] == "artifact"),
        refuse={"suite": "--artifact benches the given files"},
    ),
    "input_shape": Row(
        set=lambda f, t: (
            {"--artifact": [f["dyn"]], "--input-shape": ["1x3x48x48"]}
            if "--artifact" in t
            else {"--input-shape": ["1x3x48x48"]}
        ),
        check=lambda o, p, f: each(o, lambda r: r["resolution"] == [48, 48]),
        refuse={p: WITH_ARTIFACT for p in PATHS if p not in ART},
    ),
    "input": Row(
        set=lambda f, t: {"--input": [f["in"]], "--reference": [f["ref"]]},
        check=lambda o, p, f: each(o, lambda r: r["parity"]["ok"] and r["parity"]["rel_l2"] == 0),
        refuse={p: WITH_ARTIFACT for p in PATHS if p not in ART},
    ),
    "reference": Row(
        set=lambda f, t: {"--input": [f["in"]], "--reference": [f["ref"]]},
        check=lambda o, p, f: each(o, lambda r: r["parity"]["against"] == "--reference ref.npy"),
        refuse={p: WITH_ARTIFACT for p in PATHS if p not in ART},
    ),
}


def bench_flags() -> dict:
    """dest -> its option strings, for every option of ``mobileseg bench`` (hidden ones too), from the parser."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out: dict = {}
    for action in sub.choices["bench"]._actions:
        if action.option_strings and action.dest != "help":
            out.setdefault(action.dest, []).extend(action.option_strings)
    return out


def test_every_bench_flag_has_a_row():
    missing = sorted(set(bench_flags()) - set(ROWS))
    assert not missing, f"bench flags without a row in tests/test_bench_flags.py ROWS: {missing}"
    assert not set(ROWS) - set(bench_flags()), "rows of flags the parser no longer has"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dest", sorted(ROWS))
def test_the_flag_is_honoured_or_refused(world, files, capsys, dest, path):
    row = ROWS[dest]
    base = baseline(path, files, world)
    options = {k: v for k, v in base.items() if k not in row.drop}
    if row.set is not None:
        changes = row.set(files, base)
        if path in ART and "--artifact" in changes:
            options.pop("--artifact", None)
        options.update(changes)
    first_count = len(bench(capsys, base).records) if row.twice else None
    o = bench(capsys, options)
    o.first_count = first_count
    if path in row.refuse:
        lines = [ln for ln in o.err.strip().splitlines() if ln.startswith("mobileseg: error")]
        assert o.rc == 2 and row.refuse[path] in o.err and len(lines) == 1 and "Traceback" not in o.err, o.err
        assert not o.records, "a refused flag must stop the run before any cell"
        return
    assert o.rc == 0, o.err
    assert row.check(o, path, files), (dest, path, o.records[:1], o.err[-2000:])
