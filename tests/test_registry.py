import pytest
import torch

import mobileseg
from mobileseg.cli import main
from mobileseg.errors import ResolutionError, UnknownModelError
from mobileseg.registry import parse_resolution


def test_list_models_and_pattern():
    names = mobileseg.list_models()
    assert {"topformer-t", "topformer-s", "topformer-b", "topformer-t-cls"} <= set(names)
    assert mobileseg.list_models("topformer-?") == ["topformer-b", "topformer-s", "topformer-t"]
    assert all(mobileseg.get_spec(n).task == "classification" for n in mobileseg.list_models(task="classification"))


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as e:
        mobileseg.create_model("topformer-tiny")
    assert "topformer-t" in str(e.value)


def test_spec_contract_fields():
    for name in mobileseg.list_models():
        s = mobileseg.get_spec(name)
        assert s.paper and s.table, name
        assert len(s.mean) == 3 and len(s.std) == 3
        assert s.default_resolution[0] % s.size_multiple == 0
        s.check_resolution(*s.default_resolution)


@pytest.mark.parametrize("text,expected", [("448", (448, 448)), ("512x1024", (512, 1024)), ((256, 512), (256, 512))])
def test_parse_resolution(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("bad", ["abc", "0", "12x", "-64"])
def test_parse_resolution_errors(bad):
    with pytest.raises(ResolutionError):
        parse_resolution(bad)


def test_resolution_error_names_nearest_sizes():
    with pytest.raises(ResolutionError) as e:
        mobileseg.get_spec("topformer-t").check_resolution(500, 512)
    assert "448 or 512" in str(e.value)


def test_cli_errors_are_one_sentence(capsys):
    assert main(["info", "--model", "topformr-b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobileseg: error: unknown model") and "topformer-b" in err
    assert "Traceback" not in err
    assert main(["info", "--model", "topformer-t", "--res", "450"]) == 2
    assert "multiple of 64" in capsys.readouterr().err


def test_cli_models_and_info_json(capsys):
    import json

    assert main(["models", "topformer*"]) == 0
    assert "topformer-b" in capsys.readouterr().out
    assert main(["info", "--model", "topformer-t", "--res", "448", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == [448, 448] and info["output_shape"] == [1, 150, 56, 56]


def test_every_model_forward_contract():
    for name in mobileseg.list_models():
        m = mobileseg.create_model(name)
        s = m.spec
        h, w = (s.size_multiple * 2, s.size_multiple * 3) if s.size_multiple >= 64 else (128, 192)
        h, w = max(h, s.min_size), max(w, s.min_size)
        with torch.no_grad():
            y = m(torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(101)))
        assert tuple(y.shape) == s.output_shape(h, w), name
