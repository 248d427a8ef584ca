"""Module paths that converters keep in runtime tensor names, resolved against the exported module's tree.

* torch.onnx (TorchScript exporter): node names are the module scope plus the op, ``/backbone/tpm/layer1/conv/
  conv.0/c/Conv``; a Sequential's or ModuleList's child appears as ``conv.0`` (the parent's attribute repeated) or
  ``transformer_blocks.0`` (no level of its own). onnxsim keeps node names (it assigns names only to nameless nodes).
* litert-torch: tensor names are ``;``-separated module stacks, one per PyTorch op folded into the TFLite op, each
  ``<root class>/<class>_<attribute>/...``; the first stack is the op whose output the tensor is (a ReLU), the others
  were fused into it (the convolution before it); a trailing ``;1`` numbers helper tensors of one scope (PAD, the
  layout TRANSPOSE). A ModuleList has no level of its own: where two lists hold children of one class
  (SegFormer's ``block1.0`` and ``block2.0`` are both ``MiTBlock_0``) the name is ambiguous and not used.
* pnnx: the ncnn ``.param`` names layers by type and a counter (``convrelu_0``) and blobs by number: no module path
  survives, so ncnn tensors are matched by order, shape and value (:mod:`.match`).

Resolution walks the module tree, so a name segment that is no module (a functional op's scope) ends the path there.
"""

from __future__ import annotations


def _children(paths) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = {}
    for p in paths:
        if not p:
            continue
        parent, _, child = p.rpartition(".")
        kids.setdefault(parent, []).append(child)
    return kids


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def onnx_path(node_name: str, modules) -> str | None:
    """The module path a torch.onnx node name carries (None: no scope, e.g. a node onnxsim created)."""
    segs = [s for s in str(node_name).split("/") if s]
    if len(segs) < 2:
        return None
    cur = ""
    for s in segs[:-1]:
        if _join(cur, s) in modules:
            cur = _join(cur, s)
            continue
        head, _, rest = s.partition(".")
        if rest and cur.rpartition(".")[2] == head and _join(cur, rest) in modules:
            cur = _join(cur, rest)
            continue
        break
    return cur or None


class LiteRTNames:
    """Resolves litert-torch tensor names; ``classes``: module path -> ``module.qualname`` of its class."""

    def __init__(self, classes: dict):
        self.classes = classes
        self.kids = _children(classes)

    def stack(self, text: str) -> str | None:
        segs = text.split("/")
        cur = ""
        for seg in segs[1:]:
            nxt = self._child(cur, seg)
            if nxt is None:
                break
            cur = nxt
        return cur or None

    def _child(self, cur: str, seg: str) -> str | None:
        """The child of ``cur`` that ``seg`` (``<class>_<attribute>``) names; a ModuleList/ModuleDict has no level
        of its own in these names, so its children are looked for one level down."""
        for c in self.kids.get(cur, ()):
            p = _join(cur, c)
            if seg == f"{self.classes.get(p)}_{c}":
                return p
        hits = []
        for c in self.kids.get(cur, ()):
            p = _join(cur, c)
            if self.classes.get(p, "").endswith((".ModuleList", ".ModuleDict")):
                hits += [_join(p, g) for g in self.kids.get(p, ()) if seg == f"{self.classes.get(_join(p, g))}_{g}"]
        if len(hits) > 1:  # MiTBlock_0 under block1, block2, ...: the list's own name is lost, the path with it
            raise LookupError(seg)
        return hits[0] if hits else None

    def paths(self, name: str) -> tuple[str | None, list[str]]:
        """``(path of the op's output, paths fused into it)`` of one tensor name; (None, []) when a stack is
        ambiguous (two ModuleLists whose children have the same class and index)."""
        stacks = [t for t in str(name).split(";") if t and not t.isdigit()]
        try:
            resolved = [self.stack(t) for t in stacks if "/" in t]
        except LookupError:
            return None, []
        resolved = [p for p in resolved if p]
        if not resolved:
            return None, []
        return resolved[0], list(dict.fromkeys(p for p in resolved[1:] if p != resolved[0]))
