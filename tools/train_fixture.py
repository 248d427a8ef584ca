"""Train the int8 test fixture: TopFormer-T on the procedural "shapes" task (mobileseg.export.synthetic), 128x128.

    python tools/train_fixture.py [--steps 700] [--out tests/fixtures/topformer-t-shapes.pth]

Why a trained model: quantization error on random weights says little (flat logits); a model that really segments
shows whether int8 costs mIoU. Seeded throughout (torch.manual_seed, numpy default_rng) and run on ONE torch thread
(two threads on this shared 2-core host were 3x slower per step, and a fixed thread count keeps the float sums in
one order), so the same command writes the same weights on the same torch build. Weights are stored in fp16
(half the size: 2.7 MB); the fixture *is* those rounded weights (loaded into fp32, as every test uses it). A JSON
beside the checkpoint records the held-out mIoU, the seeds and the training time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mobileseg.export import synthetic
from mobileseg.eval.metrics import ConfusionMatrix
from mobileseg.registry import create_model

TRAIN_SEED, HELDOUT_SEED, TORCH_SEED = 1, 2, 0
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "topformer-t-shapes.pth"


def normalise(images: np.ndarray, spec) -> torch.Tensor:
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() - mean) / std


def heldout_miou(model, n: int = 64, size: int = 128) -> float:
    rng = np.random.default_rng(HELDOUT_SEED)
    images, labels = synthetic.batch(rng, n, size)
    cm = ConfusionMatrix(synthetic.NUM_CLASSES)
    model.eval()
    with torch.no_grad():
        for i in range(0, n, 16):
            out = model(normalise(images[i : i + 16], model.spec))
            pred = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False).argmax(1)
            for p, lab in zip(pred.numpy(), labels[i : i + 16]):
                cm.update(p, lab.astype(np.int64))
    model.train()
    return cm.miou()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(TORCH_SEED)
    model = create_model("topformer-t", num_classes=synthetic.NUM_CLASSES)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    rng = np.random.default_rng(TRAIN_SEED)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        images, labels = synthetic.batch(rng, args.batch, args.size)
        out = model(normalise(images, model.spec))
        out = F.interpolate(out, size=labels.shape[1:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(out, torch.from_numpy(labels).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}/{args.steps} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - t0
    model.eval()
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, args.out)
    reloaded = create_model("topformer-t", num_classes=synthetic.NUM_CLASSES, weights=str(args.out))
    miou = heldout_miou(reloaded, size=args.size)
    meta = {
        "model": "topformer-t",
        "task": "shapes (mobileseg.export.synthetic)",
        "num_classes": synthetic.NUM_CLASSES,
        "resolution": [args.size, args.size],
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "seeds": {"train_data": TRAIN_SEED, "heldout_data": HELDOUT_SEED, "torch": TORCH_SEED},
        "torch": torch.__version__,
        "threads": 1,
        "train_seconds": round(seconds, 1),
        "heldout_images": 64,
        "heldout_miou": round(miou, 2),
        "chance_miou_note": "a constant prediction scores at most the background IoU / 4 classes (about 15-20%)",
        "weights_dtype": "fp16 (loaded into fp32)",
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
