"""``mobileseg models``: the registry as a table."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list registered models and their input contract")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'topformer*'")
    p.add_argument("--task", choices=["segmentation", "classification"], default=None)
    p.add_argument("--json", action="store_true", help="print the specs as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..registry import get_spec, list_models
    from ._format import table

    specs = [get_spec(n) for n in list_models(args.pattern, task=args.task)]
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=2))
        return 0
    rows = []
    for s in specs:
        pub = s.published
        rows.append(
            {
                "model": s.name,
                "task": s.task,
                "default res": "x".join(map(str, s.default_resolution)),
                "stride": s.output_stride,
                "H,W multiple of": s.size_multiple,
                "classes": s.num_classes,
                "paper params (M)": pub.get("params_m"),
                "paper GMACs": pub.get("gflops"),
                "paper mIoU": pub.get("miou"),
                "source": s.table.split(" (")[0],
            }
        )
    print(table(rows))
    return 0
