"""What a model takes and where its published numbers come from (:class:`ModelSpec`), apart from the registry.

Below both the registry and the models mobileseg does not define (:mod:`mobileseg.models.external` builds a spec
for a user's factory), so neither imports the other back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import ResolutionError

# ImageNet statistics on the 0..255 pixel scale, as in the mmseg / TopFormer / SegFormer configs.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ModelSpec:
    """What a user must know to feed a model, and where its published numbers come from.

    Input contract: ``forward(image)`` takes float32 N x 3 x H x W, RGB, normalised as ``(pixel - mean) / std`` with
    pixels on the 0..255 scale, and returns logits N x num_classes x H/output_stride x W/output_stride
    (classification models return N x num_classes).
    """

    name: str
    family: str
    task: str = "segmentation"  # or "classification"
    default_resolution: tuple[int, int] = (512, 512)
    output_stride: int = 8
    size_multiple: int = 32  # H and W must be multiples of this
    min_size: int = 64
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 150
    dataset: str = "ade20k"
    paper: str = ""
    table: str = ""
    # Published figures at default_resolution: params_m, gflops (MACs), miou, latency_ms (+ where they come from).
    published: dict = field(default_factory=dict)
    # Names of top-level module prefixes -> part label, for the per-part breakdown of `mobileseg info`.
    parts: tuple[tuple[str, str], ...] = ()
    notes: str = ""
    # Why H and W must be multiples of size_multiple (shown in resolution errors).
    resolution_note: str = ""
    # How the paper counted FLOPs: "mmcv" (module hooks only) or "mmcv+attention" (plus attention matmuls).
    flops_convention: str = "mmcv"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["default_resolution"] = list(self.default_resolution)
        d["parts"] = [list(p) for p in self.parts]
        return d

    def output_shape(self, height: int, width: int, batch: int = 1) -> tuple[int, ...]:
        if self.task == "classification":
            return (batch, self.num_classes)
        return (batch, self.num_classes, height // self.output_stride, width // self.output_stride)

    def check_resolution(self, height: int, width: int) -> None:
        """Raise :class:`ResolutionError` (naming the nearest valid sizes) if the model cannot take H x W."""
        bad = [v for v in (height, width) if v < self.min_size or v % self.size_multiple]
        if not bad:
            return
        m = self.size_multiple
        v = bad[0]
        lower = max(self.min_size, (v // m) * m)
        upper = max(self.min_size, -(-v // m) * m)
        nearest = sorted({lower, upper})
        near = " or ".join(str(n) for n in nearest)
        why = f"at least {self.min_size}" if v < self.min_size else f"a multiple of {m}"
        raise ResolutionError(
            f"{self.name} cannot take {height}x{width}: height and width must be {why}"
            f"{' (' + self.resolution_note + ')' if self.resolution_note else ''}; nearest valid size: {near}"
        )
