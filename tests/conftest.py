import pytest
import torch

# One intra-op thread: on a loaded 2-core machine two threads made small forwards tens of times slower, and the
# exported runtimes are checked at one thread too.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    """An adb key pair for the emulated devices: ``adbkey`` (+ ``.pub``), with ``adb_keys`` beside it authorising it."""
    pytest.importorskip("adb_shell")
    from mobileseg.device.adb_direct import load_signer

    path = tmp_path_factory.mktemp("adbhome") / "adbkey"
    load_signer(path)
    (path.parent / "adb_keys").write_text(open(str(path) + ".pub").read())
    return path
