"""``mobileseg parity EXPORT_DIR --format F``: the whole-output check on demand, or with ``--per-layer`` where the
artifact starts to differ from PyTorch (a table in graph order, a JSON file and a plot beside the export)."""

from __future__ import annotations

import difflib
import os

from ..errors import MobilesegError
from ..formats import FORMATS, PRECISIONS
from ._args import add_adb_transport, add_allow_edited, add_harness, add_quiet


class ParityArgumentError(MobilesegError):
    """A bad argument of ``mobileseg parity`` (folder, format, precision, device)."""


def register(sub) -> None:
    p = sub.add_parser(
        "parity",
        help="check an export against PyTorch; --per-layer: where it starts to differ",
        description="Without --per-layer: run the artifact on its reference input and judge the "
        "output as export does. With --per-layer: every intermediate tensor the runtime "
        "computes, matched to the PyTorch module it comes from, with rel-L2, cosine, "
        "SQNR and max abs, and the first layer over the per-layer limit.",
    )
    p.add_argument("export", metavar="EXPORT_DIR", help="an export folder (written by `mobileseg export`)")
    p.add_argument(
        "--format",
        "-f",
        required=True,
        dest="fmt",
        help=f"the artifact to check: {', '.join(f for f in FORMATS if f != 'torch')}",
    )
    p.add_argument(
        "--precision",
        default=None,
        help=f"{' or '.join(PRECISIONS)}: the runtime's precision switches and the limit "
        "(default: the export's precision)",
    )
    p.add_argument("--runtime", default=None, help="runtime to run it with (default: the format's host runtime)")
    p.add_argument(
        "--device", default="local", help="local (default) or adb:SERIAL: capture on an ADB device through its harness"
    )
    add_harness(p, "on an ADB device: the Python harness or the native ncnn harness (default: auto)")
    add_adb_transport(p, "on an ADB device: through the adb server, or adb-shell straight to the device (as bench)")
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="match every intermediate tensor to its PyTorch module and find the first diverging one",
    )
    p.add_argument("--out", default=None, help="folder for the per-layer JSON and plot (default: EXPORT_DIR/numerics)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_allow_edited(p)
    add_quiet(p)
    p.set_defaults(func=run)


def check_args(args) -> tuple[str, dict, str, str, str]:
    """(export_dir, manifest, format, runtime, precision), or one sentence saying what is wrong."""
    from .. import manifest as _manifest
    from ..formats import RUNTIMES, host_runtime, runtime_key

    path = args.export
    if not os.path.exists(path):
        raise ParityArgumentError(f"export folder {path} does not exist: run `mobileseg export` first")
    if not os.path.isdir(path):
        raise ParityArgumentError(f"{path} is a file, not an export folder (pass the folder holding manifest.json)")
    export_dir, man = _manifest.load(path)
    fmt = str(args.fmt).strip().lower()
    if fmt not in FORMATS or fmt == "torch":
        close = difflib.get_close_matches(fmt, [f for f in FORMATS if f != "torch"], n=2, cutoff=0.4)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ParityArgumentError(
            f"unknown format '{args.fmt}'{hint}: choose one of {', '.join(f for f in FORMATS if f != 'torch')}"
        )
    entry = _manifest.format_entry(man, fmt)
    files = [os.path.join(export_dir, f) for f in FORMATS[fmt].files]
    if not entry or not all(os.path.isfile(f) for f in files):
        have = sorted(f for f in (man.get("formats") or {}) if f != "torch")
        raise ParityArgumentError(
            f"the export folder {export_dir} has no {fmt} artifact (it has {', '.join(have) or 'none'}): "
            f"export it with `mobileseg export --model {man.get('model')} --res "
            f"{'x'.join(map(str, man.get('resolution') or []))} --formats torch,{fmt} --out {export_dir}`"
        )
    runtime = host_runtime(fmt)
    if args.runtime:
        runtime = runtime_key(args.runtime)
        if runtime is None or RUNTIMES[runtime].format != fmt:
            able = [r for r, row in RUNTIMES.items() if row.format == fmt]
            raise ParityArgumentError(f"runtime '{args.runtime}' does not run {fmt} artifacts: use {' or '.join(able)}")
    precision = args.precision or man.get("precision") or "fp32"
    if precision not in PRECISIONS:
        raise ParityArgumentError(f"unknown precision '{args.precision}': choose one of {', '.join(PRECISIONS)}")
    made = man.get("precision") or "fp32"
    if precision != made:  # an fp32 artifact judged "int8" against the int8 limit would pass for what it is not
        raise ParityArgumentError(
            f"the export in {export_dir} was made at {made}, not {precision}: check it at {made} (leave --precision "
            f"out), or export at {precision} (`mobileseg export --model {man.get('model')} --res "
            f"{'x'.join(map(str, man.get('resolution') or []))} --precision {precision} --formats torch,{fmt}`) "
            "and check that folder"
        )
    return export_dir, man, fmt, runtime, precision


def run(args) -> int:
    import json

    export_dir, man, fmt, runtime, precision = check_args(args)
    if not args.per_layer:
        res = whole_output(export_dir, man, fmt, runtime, precision, args)
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            from ._format import table

            print(
                table(
                    [
                        {
                            k: _g(res.get(k))
                            for k in (
                                "format",
                                "runtime",
                                "precision",
                                "device",
                                "max_abs",
                                "rel_l2",
                                "limit_rel_l2",
                                "argmax_agree",
                                "ok",
                            )
                        }
                    ]
                )
            )
        return 0 if res.get("ok") else 1
    from ..numerics import layer_report as _report

    rep = per_layer_report(export_dir, fmt, runtime, precision, args)
    out = args.out or os.path.join(export_dir, "numerics")
    path = _report.write(rep, out)
    plot_path = None
    try:
        from ..numerics.plot import plot

        plot_path = plot(_same_export(out, rep), os.path.join(out, "numerics-error-vs-depth.png"))
    except MobilesegError as exc:  # matplotlib missing: the table and the JSON still stand
        if not args.quiet:
            print(f"note: no plot ({exc})")
    if args.json:
        print(json.dumps(_report._clean(rep), indent=1))
    else:
        from ._format import table

        print(table(_report.table_rows(rep)))
        s = rep["summary"]
        print(
            f"{rep['model']} {'x'.join(map(str, rep['resolution']))} {fmt} via {runtime} ({precision}, "
            f"{rep['device']}): {s['rows']} tensors compared; leaf modules {s['leaf_modules']}: {s['matched']} "
            f"matched ({s['matched_pct']}%), {s['fused']} fused, {s['identity']} identity, "
            f"{s['removed']} removed by the converter, {s['unmatched']} unmatched; per-layer limit {rep['limit_rel_l2']:g}"
        )
        judged = [r["rel_l2"] for r in rep["layers"] if r.get("judged", True)]
        skipped = s.get("not_judged") or 0
        note = (
            (
                f"; {skipped} tensor(s) marked ~ are smaller than {precision} holds as normal numbers (RMS < "
                f"{rep['min_ref_rms']:g}) and not judged"
            )
            if skipped
            else ""
        )
        print(
            _report.sentence(rep["first_diverging"])
            or f"no layer over the limit (largest rel-L2 {_g(max(judged, default=None))}{note})"
        )
        print(f"written: {path}" + (f", {plot_path}" if plot_path else ""))
    return 0 if rep["first_diverging"] is None else 1


def _open_device(args):
    """The ADB target ``--device`` names (the bench's targets: one device; several are refused)."""
    from ..bench.targets import open_target

    if not (args.device == "adb" or str(args.device).startswith("adb:")):
        raise ParityArgumentError(f"unknown device '{args.device}': use --device local or adb[:SERIAL]")
    return open_target(args.device, harness=args.harness, adb_transport=args.adb_transport)


def per_layer_report(export_dir, fmt, runtime, precision, args) -> dict:
    from ..numerics.analyze import per_layer

    if args.device in (None, "", "local"):
        return per_layer(export_dir, fmt, precision=precision, runtime=runtime)
    from ..bench.suite import Cell

    with _open_device(args) as target:  # the device's tensors, through the target's driver
        tensors, label = target.intermediates(export_dir, Cell("parity", (0, 0), runtime, precision))
    return per_layer(export_dir, fmt, precision=precision, runtime=runtime, tensors=tensors, device=label)


def whole_output(export_dir, man, fmt, runtime, precision, args) -> dict:
    import numpy as np

    from .. import manifest as _manifest
    from ..parity import check

    x = np.load(os.path.join(export_dir, _manifest.REFERENCE_INPUT))
    ref = np.load(os.path.join(export_dir, _manifest.REFERENCE_OUTPUT))
    if args.device in (None, "", "local"):
        from ..runtimes import get_runtime

        with get_runtime(runtime).load(export_dir, None, threads=1, precision=precision) as sess:
            out = sess.run(x)
        device = "host"
    else:
        from ..bench.suite import Cell

        cell = Cell(man.get("model"), tuple(man.get("resolution")), runtime, precision, man.get("graph") or "logits")
        with _open_device(args) as target:
            target.check_runtime(runtime)
            target.prepare(export_dir, fmt)
            cr = target.run_cell(cell, export_dir, man, 0, 1, None)
            device = f"adb:{target.describe().get('serial') or target.device_id()}"
        if cr.output is None:
            raise ParityArgumentError(
                f"the {cr.harness} harness on {device} returns no output: it cannot be "
                "checked (use --harness python or native)"
            )
        out = cr.output
    res = check(out, ref, precision, man.get("graph") or "logits", runtime=runtime)
    return {"format": fmt, "runtime": runtime, "precision": precision, "device": device, **res}


def _same_export(folder: str, rep: dict) -> list[dict]:
    """Every report in ``folder`` of the same model and resolution (one plot line each), this one included."""
    from ..numerics import layer_report as _report

    reps = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("numerics-") and name.endswith(".json"):
            try:
                r = _report.read(os.path.join(folder, name))
            except (MobilesegError, OSError, ValueError):
                continue
            if r.get("model") == rep.get("model") and r.get("resolution") == rep.get("resolution"):
                reps[name] = r
    reps[_report.file_name(rep)] = _report._clean(rep)
    return list(reps.values())


def _g(v):
    return f"{v:.2e}" if isinstance(v, float) else v
