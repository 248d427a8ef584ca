"""Where the files that live beside the package are: ``device_scripts/`` and ``results/published.csv``.

In a source checkout (``pip install -e .``) they are read from the checkout; a wheel install carries copies under
``<prefix>/share/mobileseg/`` (``[tool.setuptools.data-files]`` in pyproject.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def project_path(*parts: str) -> Path:
    """The checkout's ``<root>/<parts>`` if it exists, else the installed copy (else the checkout path)."""
    src = SOURCE_ROOT.joinpath(*parts)
    if src.exists():
        return src
    installed = Path(sys.prefix, "share", "mobileseg", *parts)
    return installed if installed.exists() else src
