"""The file of tested versions (requirements/py<X.Y>.txt): write it, and see how far the newest releases drifted.

    python tools/pins.py lock  [--venv DIR]            # pin every package of DIR's venv (default: this Python's)
    python tools/pins.py drift [--venv DIR] [--lock]   # newest releases in a scratch venv, fast suite, what moved/broke

Why a filtered ``pip freeze`` and not pip-compile or uv: the pins must be the versions the suite *passed with*, and
freezing the venv the suite ran in is exactly that, with no second resolver that could pick something else. On the
project machines torch is a local CPU build that only pip finds (uv looks for it on PyPI and pulls CUDA builds), and
pip-compile would need the same local-file configuration to resolve it. The freeze is filtered: mobileseg itself
(installed editable) is dropped and torch's local tag (``+cpu``) is removed, so the pin matches any build of that
release (install the build that suits your platform first).

The lock holds every direct and transitive dependency of the ``dev`` extra for one Python minor version on Linux
x86_64 (the file name says which); other platforms install with ``constraints.txt``, which pins torch only.
``drift`` is a maintainer's command, run before refreshing the pins; it is not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "mobileseg"


def lock_path(python_version: str | None = None) -> Path:
    """requirements/py3.11.txt for the running (or given) Python minor version."""
    v = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    return ROOT / "requirements" / f"py{v}.txt"


def _venv_python(venv: Path | None) -> str:
    if venv is None:
        return sys.executable
    py = Path(venv) / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"{venv} is not a virtual environment (no bin/python).")
    return str(py)


def _pip(python: str, *args: str, capture: bool = True) -> str:
    r = subprocess.run([python, "-m", "pip", *args], capture_output=capture, text=True)
    if r.returncode != 0:
        raise SystemExit(f"pip {' '.join(args)} failed:\n{(r.stderr or '')[-2000:]}")
    return r.stdout or ""


def frozen(python: str) -> dict[str, str]:
    """name -> version of every distribution in that venv (pip, setuptools and wheel included)."""
    dists = json.loads(_pip(python, "list", "--format=json"))
    out = {}
    for d in dists:
        name = d["name"]
        if _norm(name) == PROJECT or d.get("editable_project_location"):
            continue
        out[name] = re.sub(r"\+.*$", "", d["version"])  # torch 2.13.0+cpu -> 2.13.0: any build of the release
    return dict(sorted(out.items(), key=lambda kv: _norm(kv[0])))


def read_lock(path: Path) -> dict[str, str]:
    """name -> version from a lock file (``name==version`` lines; # comments)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_lock(pins: dict[str, str], python: str, path: Path) -> None:
    pyver = subprocess.run(
        [python, "-c", "import platform;print(platform.python_version(), platform.machine())"],
        capture_output=True,
        text=True,
    ).stdout.split()
    header = [
        f"# Tested versions for CPython {pyver[0].rsplit('.', 1)[0]} on Linux {pyver[1]}: every package of a venv",
        "# in which the suite passed (the dev extra). Written by `python tools/pins.py lock`; do not edit by hand.",
        "# Install: pip install torch==" + pins.get("torch", "?") + " (your platform's build), then",
        f'#          pip install -c {path.relative_to(ROOT)} -e ".[dev]"',
        "# The emulated ARM64 device installs its runtimes (numpy, onnxruntime, ncnn, ai-edge-litert) from here too.",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header + [f"{k}=={v}" for k, v in pins.items()]) + "\n")


def cmd_lock(args) -> int:
    python = _venv_python(args.venv)
    _pip(python, "check")  # a broken venv is not a tested one
    pins = frozen(python)
    if "torch" not in pins:
        raise SystemExit("torch is not installed in that venv: install torch first, then the dev extra.")
    path = args.out or lock_path(_minor(python))
    write_lock(pins, python, path)
    print(f"wrote {path.relative_to(ROOT)}: {len(pins)} pins")
    return 0


def _minor(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import sys;print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
    ).stdout.strip()


def diff(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Lines saying which packages moved, appeared or went away."""
    o = {_norm(k): (k, v) for k, v in old.items()}
    n = {_norm(k): (k, v) for k, v in new.items()}
    lines = []
    for key in sorted(set(o) | set(n)):
        if key in o and key in n and o[key][1] != n[key][1]:
            lines.append(f"  moved   {n[key][0]}: {o[key][1]} -> {n[key][1]}")
        elif key not in o:
            lines.append(f"  new     {n[key][0]}=={n[key][1]}")
        elif key not in n:
            lines.append(f"  gone    {o[key][0]}=={o[key][1]}")
    return lines


def tally(junit: Path) -> str:
    """'460 tests: 458 passed, 1 failed, 0 errors, 1 skipped' from pytest's junit report."""
    if not junit.exists():
        return "(pytest wrote no report: it did not start)"
    suites = list(ET.parse(junit).getroot().iter("testsuite"))
    n = {k: sum(int(t.get(k, 0)) for t in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    return f"{n['tests']} tests: {passed} passed, {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped"


def failed_tests(junit: Path) -> list[str]:
    if not junit.exists():
        return ["(pytest wrote no report: it did not start)"]
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                msg = (child.get("message") or "").splitlines()[0][:160] if child.get("message") else ""
                out.append(f"  {child.tag:7s} {case.get('classname')}::{case.get('name')}  {msg}")
    return out


def cmd_drift(args) -> int:
    lock = lock_path()
    old = read_lock(lock) if lock.exists() else {}
    venv = Path(args.venv or tempfile.mkdtemp(prefix="mobileseg-drift-"))
    print(f"scratch venv: {venv}", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    torch = old.get("torch", "2.13.0")
    print(f"installing torch=={torch}, then the newest releases of everything else ...", flush=True)
    _pip(python, "install", "-q", "--upgrade", "pip")
    _pip(python, "install", "-q", f"torch=={torch}")
    _pip(
        python,
        "install",
        "-q",
        "--upgrade",
        "--upgrade-strategy",
        "eager",
        "-c",
        str(ROOT / "constraints.txt"),
        "-e",
        f"{ROOT}[dev]",
    )
    new = frozen(python)
    moved = diff(old, new)
    print(f"against {lock.relative_to(ROOT)}: {len(moved)} change(s)")
    print("\n".join(moved) if moved else "  nothing moved")
    junit = venv / "drift-junit.xml"
    print("running the fast suite ...", flush=True)
    env = dict(os.environ, PYTHONPATH="")
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    r = subprocess.run(cmd + (["-x"] if args.first_failure else []), cwd=ROOT, env=env, capture_output=True, text=True)
    summary = tally(junit)
    broken = failed_tests(junit)
    print(f"fast suite: {summary}")
    print("\n".join(broken) if broken else "  no test broke")
    if r.returncode == 0 and args.lock:
        write_lock(new, python, lock)
        print(f"wrote {lock.relative_to(ROOT)} from the scratch venv")
    return 0 if r.returncode == 0 else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lk = sub.add_parser("lock", help="write requirements/py<X.Y>.txt from a venv the suite passed in")
    lk.add_argument("--venv", type=Path, help="the venv to freeze (default: the one running this script)")
    lk.add_argument("--out", type=Path, help="lock file to write (default: requirements/py<X.Y>.txt)")
    dr = sub.add_parser("drift", help="newest releases in a scratch venv: what moved, which tests broke")
    dr.add_argument("--venv", type=Path, help="scratch venv folder (default: a new temporary one)")
    dr.add_argument("--lock", action="store_true", help="rewrite the lock from the scratch venv if the suite passed")
    dr.add_argument("--first-failure", action="store_true", help="stop the suite at its first failure")
    args = ap.parse_args(argv)
    return cmd_lock(args) if args.cmd == "lock" else cmd_drift(args)


if __name__ == "__main__":
    sys.exit(main())
