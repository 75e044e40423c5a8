"""The tuning tests' dataset (the session's `small` world with its bu3dfe-legacy manifest) and
their one torch thread. How they start `tune` lives in tests/tuning.py."""

import pytest
import torch
from tuning import PROTOCOL
from worlds import SMALL, SMALL_SIZE


@pytest.fixture(scope="session")
def data(worlds):
    """A folder with merged.h5 (64 px) and m/bu3dfe-legacy/1.0.0.json: the `small` world."""
    return worlds.world(SMALL, SMALL_SIZE, manifests=(PROTOCOL,)).folder


@pytest.fixture(autouse=True)
def one_thread():
    """Two shared cores: torch's own thread pool only waits on itself (several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
