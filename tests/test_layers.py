"""The layer order of docs/ARCHITECTURE.md, kept by imports: a lower layer never imports a higher one.

Read from the source (AST, every ``import`` including those inside functions), not by importing, so a lazy import
counts as much as a top-level one. Rules are checked on the transitive closure inside mobileseg where the
architecture promises what a stage can run without (the report without torch or a runtime).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mobileseg"

# Lowest first. A module may import modules of its own layer or a lower one. Names are module prefixes.
LAYERS = [
    (
        "core",
        [
            "mobileseg.errors",
            "mobileseg.hashing",
            "mobileseg.resources",
            "mobileseg.formats",
            "mobileseg.parity",
            "mobileseg.manifest",
        ],
    ),
    (
        "models",
        ["mobileseg.model_spec", "mobileseg.registry", "mobileseg.checkpoint", "mobileseg.flops", "mobileseg.models"],
    ),
    ("results", ["mobileseg.results"]),
    ("stages", ["mobileseg.runtimes", "mobileseg.export", "mobileseg.device", "mobileseg.emulator"]),
    ("numerics", ["mobileseg.numerics"]),  # per-layer parity: reads artifacts through the stages, used by bench
    ("bench, eval, report", ["mobileseg.bench", "mobileseg.eval", "mobileseg.report"]),
    ("choose", ["mobileseg.choose"]),  # races candidates through bench, eval and the report's published numbers
    ("tools", ["mobileseg.perf"]),
    ("cli", ["mobileseg.commands", "mobileseg.cli", "mobileseg.__main__"]),
]
# Within the "stages" layer the stages are independent of each other except where the arrow is allowed.
SAME_LAYER_ALLOWED = {
    "mobileseg.export": {"mobileseg.runtimes"},  # export checks each artifact with its runtime
}
INDEPENDENT = ("stages", "bench, eval, report")
RUNTIME_PACKAGES = {
    "onnxruntime",
    "ncnn",
    "ai_edge_litert",
    "tflite_runtime",
    "pnnx",
    "litert_torch",
    "onnx",
    "onnxsim",
}


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}
GRAPH = {m: {i for i in imports_of(p)} for m, p in MODULES.items()}


def layer_of(mod: str):
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if mod == prefix or mod.startswith(prefix + "."):
                return rank, prefix
    return None


def internal(names) -> set[str]:
    """The mobileseg modules among ``names`` (``from pkg import name`` may name an attribute, not a module)."""
    return {n for n in names if n in MODULES}


def closure(mod: str) -> set[str]:
    """Every mobileseg module importing ``mod`` runs. The package root (``mobileseg/__init__``: the public face,
    torch-free, models imported lazily) is left out: every module runs it, so it cannot tell layers apart."""
    seen, todo = set(), [mod]
    while todo:
        m = todo.pop()
        if m in seen or m == "mobileseg":
            continue
        seen.add(m)
        todo += internal(GRAPH.get(m, ()))
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES]
    return seen


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if m != "mobileseg" and layer_of(m) is None)
    assert not missing, f"add these modules to a layer in LAYERS (and docs/ARCHITECTURE.md): {missing}"


def test_no_module_imports_a_higher_layer():
    wrong = []
    for mod in MODULES:
        own = layer_of(mod)
        if own is None:
            continue
        for dep in internal(GRAPH[mod]):
            if dep == "mobileseg":
                continue
            other = layer_of(dep)
            if other is None or other[1] == own[1]:
                continue
            if other[0] > own[0]:
                wrong.append(f"{mod} ({LAYERS[own[0]][0]}) imports {dep} ({LAYERS[other[0]][0]})")
            elif (
                other[0] == own[0]
                and LAYERS[own[0]][0] in INDEPENDENT
                and other[1] not in SAME_LAYER_ALLOWED.get(own[1], set())
            ):
                wrong.append(f"{mod} imports {dep}: the stages of one layer stay independent")
    assert not wrong, "\n".join(wrong)


def test_device_layer_is_below_bench():
    bad = sorted(
        f"{m} -> {d}"
        for m in MODULES
        if m.startswith("mobileseg.device")
        for d in internal(GRAPH[m])
        if d.startswith(("mobileseg.bench", "mobileseg.export", "mobileseg.runtimes"))
    )
    assert not bad, bad


def test_runtimes_import_no_model_code():
    bad = sorted(
        f"{m} -> {d}"
        for m in MODULES
        if m.startswith("mobileseg.runtimes")
        for d in closure(m)
        if d.startswith(
            ("mobileseg.models", "mobileseg.export", "mobileseg.registry", "mobileseg.checkpoint", "mobileseg.flops")
        )
    )
    assert not bad, bad


@pytest.mark.parametrize("stage", ["mobileseg.report", "mobileseg.results"])
def test_report_needs_neither_torch_nor_a_runtime(stage):
    bad = set()
    for m in MODULES:
        if m == stage or m.startswith(stage + "."):
            for dep in closure(m):
                if dep.startswith("mobileseg.runtimes"):
                    bad.add(f"{m} reaches {dep}")
                for ext in GRAPH.get(dep, ()):
                    top = ext.split(".")[0]
                    if top == "torch" or top in RUNTIME_PACKAGES:
                        bad.add(f"{m} reaches {dep}, which imports {ext}")
    assert not bad, sorted(bad)


def test_device_scripts_import_nothing_from_mobileseg():
    scripts = sorted((ROOT / "device_scripts").rglob("*.py"))
    assert scripts
    for p in scripts:
        hits = {i for i in imports_of_script(p) if i.split(".")[0] == "mobileseg"}
        assert not hits, f"{p.name} runs on the device, where mobileseg is not installed: {hits}"


def imports_of_script(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
    return out


def test_the_walker_sees_a_lazy_relative_import(tmp_path):
    """A device module importing the bench inside a function resolves to mobileseg.bench.runner (and is caught)."""
    bad = tmp_path / "mobileseg" / "device" / "probe_tmp.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from ..bench.runner import run_bench\n")
    found = imports_of(bad, tmp_path)
    assert "mobileseg.bench.runner" in found
    assert layer_of("mobileseg.bench.runner")[0] > layer_of("mobileseg.device.probe_tmp")[0]


# -- the bench target's interface (contract 5) is all a caller sees ------------------------------------------------
TARGET_CLASSES = {"LocalTarget", "AdbTarget"}


def _names_a_target(node) -> bool:
    """``target``, ``tgt``, ``<x>_target`` or ``self.target`` / ``self._target``: how the tree names a bench target."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    name = name.lstrip("_")
    return name in ("target", "tgt") or name.endswith("_target")


def target_misuse(tree: ast.AST) -> list[str]:
    """Calls into a target's private members, and branches on what kind of target it is (``.kind``, ``getattr`` /
    ``hasattr`` probing, ``isinstance`` of a target class)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _names_a_target(node.value):
            if node.attr == "kind":
                out.append(f"line {node.lineno}: branches on target.kind")
            elif node.attr.startswith("_") and not node.attr.startswith("__"):
                out.append(f"line {node.lineno}: uses the target's private member {node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = node.args
            if node.func.id in ("getattr", "hasattr") and args and _names_a_target(args[0]):
                out.append(f"line {node.lineno}: probes the target with {node.func.id}")
            if node.func.id == "isinstance" and len(args) == 2:
                kinds = args[1].elts if isinstance(args[1], ast.Tuple) else [args[1]]
                if any(isinstance(k, ast.Name) and k.id in TARGET_CLASSES for k in kinds):
                    out.append(f"line {node.lineno}: branches on the target's class")
    return out


def test_no_caller_branches_on_the_target_or_reaches_into_it():
    """Outside mobileseg/bench/targets, a target is used through its methods only: what a target (or its driver)
    can do is a method that answers or refuses, never a check of which target it is."""
    bad = []
    for mod, path in MODULES.items():
        if mod.startswith("mobileseg.bench.targets"):
            continue
        bad += [f"{mod}: {m}" for m in target_misuse(ast.parse(path.read_text(encoding="utf-8")))]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "code",
    [
        "if target.kind == 'local':\n    pass\n",
        "x = target._artifact(d, m, f)\n",
        "if getattr(target, 'kind', '') != 'local':\n    pass\n",
        "y = hasattr(target, 'op_profile_text')\n",
        "z = self._target._desc\n",
        "w = isinstance(tgt, AdbTarget)\n",
    ],
)
def test_the_target_check_sees_each_misuse(code):
    assert target_misuse(ast.parse(code))


def import_cycles(graph: dict) -> list[list[str]]:
    """The strongly connected components of more than one module in ``graph`` (module -> modules it imports)."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    found: list = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_modules_import_each_other():
    """No import circle, lazy imports included (a lazy import inside a function is still a dependency: the two
    modules can only be understood, tested and moved together). Package ``__init__`` files are left out: they
    re-export their submodules by design."""
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    graph = {m: internal(v) - packages - {m} for m, v in GRAPH.items() if m not in packages}
    assert import_cycles(graph) == []


def test_the_cycle_check_sees_a_lazy_circle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
