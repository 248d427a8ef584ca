"""The export matrix (tests/test_export_matrix.py) extended to ExecuTorch: every registered segmentation model
exported to .pte at the smallest resolution it allows, run by the ExecuTorch runtime and parity-checked (slow).

ExecuTorch's lowering takes minutes per model on a loaded 2-core host (docs/converters.md), so the slow run covers
two models (a TopFormer and a CNN baseline) unless ``MOBILESEG_ET_MATRIX=all`` asks for every
model (what the figures in docs/converters.md come from).
"""

import os

import pytest

import mobileseg
from mobileseg.export import export_model
from test_export_matrix import small_res

pytest.importorskip("executorch.runtime")
MODELS = mobileseg.list_models(task="segmentation")
if os.environ.get("MOBILESEG_ET_MATRIX", "").lower() != "all":
    MODELS = [m for m in MODELS if m in ("topformer-t", "lraspp-mbv3-large")]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_every_segmentation_model_to_pte(name, tmp_path):
    res = export_model(name, small_res(name), formats=["executorch"], out=str(tmp_path / name))
    e = res.formats["executorch"]
    assert e["ok"], f"{name}: {e.get('error')} parity={e.get('parity')}"
    assert e["parity"]["ok"] and e["parity"]["rel_l2"] <= e["parity"]["limit_rel_l2"]
    assert e["runtime"]["name"] == "executorch" and e["info"]["delegates"] >= 1
