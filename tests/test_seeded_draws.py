"""Every random draw in the tests and tools is seeded where it is made, so a failure reproduces from the file alone.

A draw counts as seeded when it takes ``generator=`` (torch), comes from ``np.random.default_rng(SEED)`` (numpy), or
sits in a function that calls ``torch.manual_seed`` / ``np.random.seed`` itself. The autouse seed in conftest.py is
a safety net, not a seed: it makes a draw depend on what ran before it in the same test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_DRAWS = {
    "randn",
    "rand",
    "randint",
    "randperm",
    "normal",
    "bernoulli",
    "multinomial",
    "poisson",
    "randn_like",
    "rand_like",
    "randint_like",
}
INPLACE_DRAWS = {"normal_", "uniform_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_", "log_normal_"}
NUMPY_LEGACY = {
    "rand",
    "randn",
    "randint",
    "random",
    "random_sample",
    "normal",
    "uniform",
    "choice",
    "permutation",
    "shuffle",
    "standard_normal",
    "integers",
}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _seeds_itself(func) -> bool:
    return any(
        isinstance(n, ast.Call) and _dotted(n.func) in ("torch.manual_seed", "np.random.seed") for n in ast.walk(func)
    )


def unseeded_draws(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        kwargs = {k.arg for k in node.keywords}
        bad = False
        if name.startswith("torch.") and name.split(".")[-1] in TORCH_DRAWS and name.count(".") == 1:
            bad = "generator" not in kwargs
        elif isinstance(node.func, ast.Attribute) and node.func.attr in INPLACE_DRAWS:
            bad = "generator" not in kwargs
        elif name.startswith(("np.random.", "numpy.random.")):
            fn = name.split(".")[-1]
            bad = fn in NUMPY_LEGACY or (fn == "default_rng" and not node.args and not node.keywords)
        if not bad:
            continue
        scope = parents.get(node)
        while scope is not None and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope = parents.get(scope)
        if scope is not None and _seeds_itself(scope):
            continue
        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name or node.func.attr}")
    return found


def test_no_unseeded_draws_in_tests_and_tools():
    files = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    found = [hit for f in files for hit in unseeded_draws(f)]
    assert not found, "unseeded random draws (pass generator= or use np.random.default_rng(SEED)):\n" + "\n".join(found)


def test_the_scan_finds_what_it_should(tmp_path):
    sample = ROOT / "tests" / "_scan_sample.py"
    sample.write_text(
        "import torch, numpy as np\n"
        "def a():\n    return torch.randn(3)\n"
        "def b():\n    return torch.randn(3, generator=torch.Generator().manual_seed(0))\n"
        "def c():\n    torch.manual_seed(1)\n    return torch.rand(2)\n"
        "def d(t):\n    return t.normal_(0, 1), np.random.rand(3), np.random.default_rng()\n"
        "def e():\n    return np.random.default_rng(0).normal(size=3)\n"
    )
    try:
        hits = unseeded_draws(sample)
    finally:
        sample.unlink()
    assert [h.split(": ")[1] for h in hits] == ["torch.randn", "t.normal_", "np.random.rand", "np.random.default_rng"]
