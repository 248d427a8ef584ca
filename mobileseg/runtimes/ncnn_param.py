"""The ncnn ``.param`` text format, read: the converter's checks (:mod:`mobileseg.export.ncnn`, its int8 pass) and the
ncnn adapter's per-layer capture read the same layers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Layer:
    """One ``.param`` line: ``params`` keeps each ``key=value`` as written (arrays included)."""

    type: str
    name: str
    bottoms: list
    tops: list
    params: dict

    def get(self, key: int, default: int = 0) -> int:
        v = self.params.get(key)
        return default if v is None else int(float(v))

    def line(self) -> str:
        blobs = " ".join(self.bottoms + self.tops)
        kv = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)} {blobs} {kv}".rstrip()


def read_layers(path: str) -> tuple[list[str], list[Layer]]:
    """The header lines (magic, counts) and the layers of an ncnn ``.param`` file."""
    with open(path) as f:
        lines = f.read().splitlines()
    layers = []
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        blobs = parts[4 : 4 + n_in + n_out]
        params = dict((int(k), v) for k, v in (kv.split("=", 1) for kv in parts[4 + n_in + n_out :]))
        layers.append(Layer(parts[0], parts[1], blobs[:n_in], blobs[n_in:], params))
    return lines[:2], layers


def read_param(path: str) -> list[tuple[str, str, list[str], list[str]]]:
    """``[(type, name, inputs, outputs)]`` of an ncnn ``.param`` file."""
    return [(ly.type, ly.name, ly.bottoms, ly.tops) for ly in read_layers(path)[1]]
