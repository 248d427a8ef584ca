"""``mobileseg info``: parameters and MACs (paper convention) with a per-part breakdown."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("info", help="parameters and MACs of a model at a resolution, per part")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--res", default=None, help="448 or HxW such as 512x1024 (default: the model's)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def model_info(name: str, res=None, num_classes: int | None = None) -> dict:
    """Python API behind ``mobileseg info``: a dict with params, MACs, per-part breakdown and the paper's figures."""
    from ..flops import count_complexity
    from ..registry import create_model, get_spec, parse_resolution

    spec = get_spec(name)
    h, w = parse_resolution(res) if res is not None else spec.default_resolution
    spec.check_resolution(h, w)
    model = create_model(name, num_classes=num_classes)
    c = count_complexity(model, h, w)
    paper_macs = c.macs + (c.matmul_macs if spec.flops_convention == "mmcv+attention" else 0)
    info = {
        "model": spec.name,
        "resolution": [h, w],
        "num_classes": model.spec.num_classes,
        "params": c.params,
        "macs": c.macs,
        "attention_matmul_macs": c.matmul_macs,
        "flops_convention": spec.flops_convention,
        "paper_convention_macs": paper_macs,
        "output_shape": list(c.output_shape),
        "parts": c.parts,
        "published": spec.published,
        "paper": spec.paper,
        "table": spec.table,
        "published_at": list(spec.default_resolution),
    }
    return info


def run(args) -> int:
    from ._format import table

    info = model_info(args.model, args.res, args.num_classes)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    h, w = info["resolution"]
    print(f"{info['model']} at {h}x{w}, {info['num_classes']} classes -> output {tuple(info['output_shape'])}")
    rows = []
    for label, d in info["parts"].items():
        if not d["params"] and not d["macs"]:
            continue
        rows.append(
            {
                "part": label,
                "params (M)": f"{d['params'] / 1e6:.3f}",
                "share of params": f"{100 * d['params'] / info['params']:.1f}%",
                "GMACs": f"{d['macs'] / 1e9:.3f}",
                "share of MACs": f"{100 * d['macs'] / max(info['macs'], 1):.1f}%",
            }
        )
    rows.append(
        {
            "part": "total",
            "params (M)": f"{info['params'] / 1e6:.3f}",
            "share of params": "100%",
            "GMACs": f"{info['macs'] / 1e9:.3f}",
            "share of MACs": "100%",
        }
    )
    print(table(rows))
    mm = info["attention_matmul_macs"] / 1e9
    if info["flops_convention"] == "mmcv+attention":
        print(
            f"attention matmuls: {mm:.4f} GMACs (counted by this paper): "
            f"{info['paper_convention_macs'] / 1e9:.3f} GMACs in the paper's convention"
        )
    else:
        print(f"attention matmuls (not counted by this paper's mmcv convention): {mm:.4f} GMACs")
    pub = info["published"]
    if pub:
        ph, pw = info["published_at"]
        print(
            f"paper ({info['table']}, at {ph}x{pw}): params {pub.get('params_m')} M, "
            f"FLOPs {pub.get('gflops')} G" + (f", mIoU {pub['miou']}" if "miou" in pub else "")
        )
    return 0
