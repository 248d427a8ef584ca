import pytest
import torch

# One intra-op thread: on a loaded 2-core machine two threads made small forwards tens of times slower, and the
# exported runtimes are checked at one thread too.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
