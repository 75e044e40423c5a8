"""Session fixtures: the one factory of generated worlds (tests/worlds.py) and the worlds that
several rooms share, each a thin view of it; and the hook that keeps the `cuda` tests to
machines that have a CUDA device."""

import os

import pytest
from worlds import SMALL, SMALL_SIZE, TINY, TINY_SIZE, Worlds, roots_of, sources_of


def pytest_runtest_setup(item):
    """A test marked `cuda` is skipped, saying why, where torch sees no CUDA device; under
    FER3D_REQUIRE_CUDA=1 (scripts/gpu-check.sh on a GPU machine) that fails instead, so that a
    GPU torch cannot use (a CPU-only wheel, a driver mismatch) is not passed as nothing to test.

    torch is imported here only when a cuda test is about to run: the data side of the suite
    never needs it.
    """
    if item.get_closest_marker("cuda") is None:
        return
    import torch

    if torch.cuda.is_available():
        return
    problem = f"no CUDA device: torch {torch.__version__} (CUDA {torch.version.cuda}) sees none"
    if os.environ.get("FER3D_REQUIRE_CUDA") == "1":
        pytest.fail(f"FER3D_REQUIRE_CUDA=1 but {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def worlds(tmp_path_factory):
    """The session's `Worlds`: `worlds.world(config, size, sources=None, manifests=())` and
    `worlds.sample(config)`, each built on first request and shared afterwards (read-only)."""
    return Worlds(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def worlds_stay_untouched(worlds):
    """After each module: no test wrote into a shared world (a test that must, copies first)."""
    yield
    changes = worlds.check_untouched()
    assert not changes, "a test wrote into a shared world:\n  " + "\n  ".join(changes[:20])


@pytest.fixture(scope="session")
def tiny_sample(worlds):
    """(folder, roots by source name) of a tiny procedural sample (in `folder / "sample"`)."""
    sample = worlds.sample(TINY)
    return sample.parent, roots_of(sample, sources_of(TINY))


@pytest.fixture(scope="session")
def tiny_merged(worlds):
    """(folder, roots, build report) with `folder / "merged.h5"` built at 48x48 from every
    source of the tiny sample, its render in `folder / "render"`."""
    world = worlds.world(TINY, TINY_SIZE)
    return world.folder, world.roots, world.report


@pytest.fixture(scope="session")
def small(worlds):
    """A 3-subject BU-3DFE sample at 64 px with its bu3dfe-legacy and bu3dfe-full manifests."""
    return worlds.world(SMALL, SMALL_SIZE, manifests=("bu3dfe-legacy", "bu3dfe-full")).folder


@pytest.fixture(scope="session")
def small_config():
    return SMALL
