"""Checkpoint converters for SegFormer: every known layout -> our (NVlabs / mmseg-0.x) names.

Recognised layouts (docs/models.md sections 2-4):

* **official** (NVlabs release, mmseg-0.x): our native names. Dead ``decode_head.conv_seg.*`` keys (created but never
  used by mmseg-0.x's ``BaseDecodeHead``) are dropped and reported. A bare ImageNet backbone (``patch_embed1...``
  without ``backbone.``) gets the prefix.
* **transformers**: the Hugging Face hub layout (``segformer.encoder.block.{i}.{j}.attention.self.query``, split
  ``key``/``value``, ``decode_head.linear_c.{i}``, ``linear_fuse`` + ``batch_norm`` + ``classifier``) and the
  refactored layout of transformers 5.x (``segformer.stages.{i}.blocks.{j}.attention.q_proj`` ...,
  ``decode_head.linear_projections.{i}``). Key and value are concatenated back into ``kv`` (keys first).
* **mmseg-1.x**: ``backbone.layers.{i}.{0: patch embed, 1: blocks, 2: norm}``, ``attn.attn.in_proj_*`` (q, k, v
  stacked: split into ``q`` and ``kv``), ``attn.attn.out_proj``, the Mix-FFN as 1x1/3x3 convs ``ffn.layers.{0,1,4}``
  (1x1 weights reshaped to Linear). Its ``SegformerHead`` (``decode_head.convs.{i}``, ``fusion_conv``,
  ``conv_seg``) is a different graph from the release's head: it loads into ``decoder="mmseg1"``.

Every converter ends by checking that each key was mapped; a leftover key raises :class:`CheckpointError` naming
it (a silently dropped weight is a bug).
"""

from __future__ import annotations

import re

import torch

from ..checkpoint import register_family
from ..errors import CheckpointError

_W = r"(weight|bias)"
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
NATIVE_PATTERNS = [
    re.compile(p + "$")
    for p in (
        rf"backbone\.patch_embed[1-4]\.(proj|norm)\.{_W}",
        rf"backbone\.block[1-4]\.\d+\.(norm1|norm2|attn\.q|attn\.kv|attn\.sr|attn\.norm|attn\.proj|mlp\.fc1|mlp\.fc2|"
        rf"mlp\.dwconv\.dwconv)\.{_W}",
        rf"backbone\.norm[1-4]\.{_W}",
        rf"decode_head\.linear_c[1-4]\.proj\.{_W}",  # decoder="mlp"
        r"decode_head\.linear_c[1-4]\.conv\.weight",
        rf"decode_head\.linear_c[1-4]\.bn\.{_BN}",  # decoder="mmseg1"
        r"decode_head\.linear_fuse\.conv\.weight",
        rf"decode_head\.linear_fuse\.bn\.{_BN}",
        rf"decode_head\.linear_pred\.{_W}",
    )
]


def _is_native(key: str) -> bool:
    return any(p.match(key) for p in NATIVE_PATTERNS)


def _check_all_native(state: dict, layout: str) -> None:
    bad = sorted(k for k in state if not _is_native(k))
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise CheckpointError(
            f"the {layout} SegFormer checkpoint has keys no converter maps: {', '.join(bad[:5])}{more}; "
            "check that the file is a SegFormer segmentation checkpoint (official, transformers or mmseg-1.x)"
        )


def detect_layout(state: dict) -> str:
    keys = list(state)
    if any(
        k.startswith("segformer.")
        or k.startswith("decode_head.linear_c.")
        or k.startswith("decode_head.linear_projections.")
        for k in keys
    ):
        return "transformers"
    if any(k.startswith(("backbone.layers.", "layers.")) for k in keys) or any(
        k.startswith(("decode_head.convs.", "decode_head.fusion_conv.")) for k in keys
    ):
        return "mmseg-1.x"
    return "official"


# ----------------------------------------------------------------------------------------------------- official
def convert_official(state: dict):
    notes = []
    if not any(k.startswith(("backbone.", "decode_head.")) for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}
        notes.append("added the 'backbone.' prefix (bare MiT backbone checkpoint)")
    dead = sorted(k for k in state if k.startswith("decode_head.conv_seg."))
    if dead:
        state = {k: v for k, v in state.items() if k not in dead}
        notes.append(
            f"ignored {len(dead)} dead keys of the release ({', '.join(dead)}): mmseg-0.x creates "
            "conv_seg but SegFormerHead predicts with linear_pred"
        )
    _check_all_native(state, "official")
    return state, notes


# ------------------------------------------------------------------------------------------------- transformers
# (regex on the HF key, our key template); {i} are HF 0-based stage indices, turned into 1-based below.
_HF_RULES = [
    # hub layout (transformers <= 4.x files)
    (r"segformer\.encoder\.patch_embeddings\.(\d+)\.proj\.(.+)", "backbone.patch_embed{s}.proj.{r}"),
    (r"segformer\.encoder\.patch_embeddings\.(\d+)\.layer_norm\.(.+)", "backbone.patch_embed{s}.norm.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.layer_norm_1\.(.+)", "backbone.block{s}.{j}.norm1.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.layer_norm_2\.(.+)", "backbone.block{s}.{j}.norm2.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.attention\.self\.query\.(.+)", "backbone.block{s}.{j}.attn.q.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.attention\.self\.key\.(.+)", "KEY backbone.block{s}.{j}.attn.kv.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.attention\.self\.value\.(.+)", "VAL backbone.block{s}.{j}.attn.kv.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.attention\.self\.sr\.(.+)", "backbone.block{s}.{j}.attn.sr.{r}"),
    (
        r"segformer\.encoder\.block\.(\d+)\.(\d+)\.attention\.self\.layer_norm\.(.+)",
        "backbone.block{s}.{j}.attn.norm.{r}",
    ),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.attention\.output\.dense\.(.+)", "backbone.block{s}.{j}.attn.proj.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.mlp\.dense1\.(.+)", "backbone.block{s}.{j}.mlp.fc1.{r}"),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.mlp\.dense2\.(.+)", "backbone.block{s}.{j}.mlp.fc2.{r}"),
    (
        r"segformer\.encoder\.block\.(\d+)\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)",
        "backbone.block{s}.{j}.mlp.dwconv.dwconv.{r}",
    ),
    (r"segformer\.encoder\.layer_norm\.(\d+)\.(.+)", "backbone.norm{s}.{r}"),
    (r"decode_head\.linear_c\.(\d+)\.proj\.(.+)", "decode_head.linear_c{s}.proj.{r}"),
    # transformers 5.x layout
    (r"segformer\.stages\.(\d+)\.patch_embeddings\.proj\.(.+)", "backbone.patch_embed{s}.proj.{r}"),
    (r"segformer\.stages\.(\d+)\.patch_embeddings\.layer_norm\.(.+)", "backbone.patch_embed{s}.norm.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.layernorm_before\.(.+)", "backbone.block{s}.{j}.norm1.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.layernorm_after\.(.+)", "backbone.block{s}.{j}.norm2.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.attention\.q_proj\.(.+)", "backbone.block{s}.{j}.attn.q.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.attention\.k_proj\.(.+)", "KEY backbone.block{s}.{j}.attn.kv.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.attention\.v_proj\.(.+)", "VAL backbone.block{s}.{j}.attn.kv.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.attention\.o_proj\.(.+)", "backbone.block{s}.{j}.attn.proj.{r}"),
    (
        r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.attention\.sequence_reduction\.sequence_reduction\.(.+)",
        "backbone.block{s}.{j}.attn.sr.{r}",
    ),
    (
        r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.attention\.sequence_reduction\.layer_norm\.(.+)",
        "backbone.block{s}.{j}.attn.norm.{r}",
    ),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(.+)", "backbone.block{s}.{j}.mlp.fc1.{r}"),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(.+)", "backbone.block{s}.{j}.mlp.fc2.{r}"),
    (
        r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)",
        "backbone.block{s}.{j}.mlp.dwconv.dwconv.{r}",
    ),
    (r"segformer\.stages\.(\d+)\.layer_norm\.(.+)", "backbone.norm{s}.{r}"),
    (r"decode_head\.linear_projections\.(\d+)\.proj\.(.+)", "decode_head.linear_c{s}.proj.{r}"),
    # head (same in both)
    (r"decode_head\.linear_fuse\.weight", "decode_head.linear_fuse.conv.weight"),
    (r"decode_head\.batch_norm\.(.+)", "decode_head.linear_fuse.bn.{r0}"),
    (r"decode_head\.classifier\.(.+)", "decode_head.linear_pred.{r0}"),
]
_HF_RULES = [(re.compile(p + "$"), t) for p, t in _HF_RULES]


def _apply_rule(key: str, rules):
    for pat, tmpl in rules:
        m = pat.match(key)
        if not m:
            continue
        g = m.groups()
        if "{s}" in tmpl:
            fields = {"s": int(g[0]) + 1, "r": g[-1]}
            if "{j}" in tmpl:
                fields["j"] = int(g[1])
            return tmpl.format(**fields)
        return tmpl.format(r0=g[0]) if g else tmpl
    return None


def convert_transformers(state: dict):
    out, halves, leftover = {}, {}, []
    for k, v in state.items():
        new = _apply_rule(k, _HF_RULES)
        if new is None:
            leftover.append(k)
        elif new.startswith(("KEY ", "VAL ")):
            halves.setdefault(new[4:], {})[new[:3]] = v
        else:
            out[new] = v
    for k, parts in halves.items():
        if set(parts) != {"KEY", "VAL"}:
            raise CheckpointError(
                f"the transformers SegFormer checkpoint has a key without its value partner "
                f"(or the reverse) for {k}; the file is incomplete"
            )
        out[k] = torch.cat([parts["KEY"], parts["VAL"]], dim=0)
    if leftover:
        more = f" (+{len(leftover) - 5} more)" if len(leftover) > 5 else ""
        raise CheckpointError(
            f"the transformers SegFormer checkpoint has keys no converter maps: {', '.join(sorted(leftover)[:5])}"
            f"{more}; use a SegformerForSemanticSegmentation checkpoint (an image-classification file has no "
            "decode head)"
        )
    _check_all_native(out, "transformers")
    return out, [f"converted {len(state)} keys from the Hugging Face transformers layout (key/value merged into kv)"]


# ---------------------------------------------------------------------------------------------------- mmseg-1.x
def convert_mmseg1(state: dict):
    if not any(k.startswith(("backbone.", "decode_head.")) for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}
    out, leftover = {}, []
    for k, v in state.items():
        m = re.match(r"backbone\.layers\.(\d+)\.(\d+)\.(.+)$", k)
        if m:
            s, part, rest = int(m.group(1)) + 1, int(m.group(2)), m.group(3)
            if part == 0:
                mm = re.match(r"(projection|norm)\.(weight|bias)$", rest)
                if mm:
                    out[
                        f"backbone.patch_embed{s}.{'proj' if mm.group(1) == 'projection' else 'norm'}.{mm.group(2)}"
                    ] = v
                    continue
            elif part == 2:
                mm = re.match(r"(weight|bias)$", rest)
                if mm:
                    out[f"backbone.norm{s}.{rest}"] = v
                    continue
            elif part == 1:
                mm = re.match(r"(\d+)\.(.+)$", rest)
                if mm:
                    j, name = int(mm.group(1)), mm.group(2)
                    pre = f"backbone.block{s}.{j}."
                    simple = {
                        "norm1": "norm1",
                        "norm2": "norm2",
                        "attn.sr": "attn.sr",
                        "attn.norm": "attn.norm",
                        "attn.attn.out_proj": "attn.proj",
                        "ffn.layers.1": "mlp.dwconv.dwconv",
                    }
                    conv1x1 = {"ffn.layers.0": "mlp.fc1", "ffn.layers.4": "mlp.fc2"}
                    mod, _, wb = name.rpartition(".")
                    if mod in simple and wb in ("weight", "bias"):
                        out[pre + simple[mod] + "." + wb] = v
                        continue
                    if mod in conv1x1 and wb in ("weight", "bias"):
                        out[pre + conv1x1[mod] + "." + wb] = v.reshape(v.shape[0], -1) if wb == "weight" else v
                        continue
                    mi = re.match(r"attn\.attn\.in_proj_(weight|bias)$", name)
                    if mi:
                        c = v.shape[0] // 3
                        out[pre + "attn.q." + mi.group(1)] = v[:c].clone()
                        out[pre + "attn.kv." + mi.group(1)] = v[c:].clone()
                        continue
            leftover.append(k)
            continue
        m = re.match(r"decode_head\.convs\.(\d+)\.(conv\.weight|bn\..+)$", k)
        if m:
            out[f"decode_head.linear_c{int(m.group(1)) + 1}.{m.group(2)}"] = v
            continue
        m = re.match(r"decode_head\.fusion_conv\.(conv\.weight|bn\..+)$", k)
        if m:
            out[f"decode_head.linear_fuse.{m.group(1)}"] = v
            continue
        m = re.match(r"decode_head\.conv_seg\.(weight|bias)$", k)
        if m:
            out[f"decode_head.linear_pred.{m.group(1)}"] = v
            continue
        leftover.append(k)
    if leftover:
        more = f" (+{len(leftover) - 5} more)" if len(leftover) > 5 else ""
        raise CheckpointError(
            f"the mmseg-1.x SegFormer checkpoint has keys no converter maps: "
            f"{', '.join(sorted(leftover)[:5])}{more}; is it a MixVisionTransformer + SegformerHead "
            "checkpoint?"
        )
    _check_all_native(out, "mmseg-1.x")
    notes = [
        f"converted {len(state)} keys from the mmseg-1.x layout (in_proj split into q and kv, 1x1 ffn convs "
        "reshaped to Linear)"
    ]
    if any(k.startswith("decode_head.") for k in out):
        notes.append(
            "mmseg-1.x SegformerHead is a different graph from the release's head: build the model with "
            "decoder='mmseg1' (and norm_eps=patch_norm_eps=attn_norm_eps=1e-6, mmseg-1.x's LayerNorm eps)"
        )
    return out, notes


def convert_segformer_state(state: dict, model_name: str = "segformer"):
    """Registered converter: recognise the layout of ``state`` and return (our state_dict, notes)."""
    layout = detect_layout(state)
    if layout == "transformers":
        return convert_transformers(state)
    if layout == "mmseg-1.x":
        return convert_mmseg1(state)
    return convert_official(state)


register_family("segformer", convert_segformer_state, classifier_keys=("decode_head.linear_pred.weight",))
