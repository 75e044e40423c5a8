"""Session fixtures: one tiny generated sample and its merged HDF5, shared by several modules."""

import pytest

from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.synthetic import SampleConfig, make_sample

TINY = SampleConfig(
    seed=11,
    bu3dfe_subjects=1,
    bosphorus_subjects=1,
    cald3r_subjects=1,
    mend3s_subjects=1,
    cald3r_samples_per_class=1,
)
TINY_SIZE = 48


@pytest.fixture(scope="session")
def tiny_sample(tmp_path_factory):
    """(folder, roots by source name) of a tiny procedural sample."""
    base = tmp_path_factory.mktemp("tiny")
    make_sample(base / "sample", TINY, workers=1, progress=False)
    roots = {name: base / "sample" / name for name in ("bu3dfe", "bosphorus", "cald3r-mend3s")}
    return base, roots


@pytest.fixture(scope="session")
def tiny_merged(tiny_sample):
    """(folder, roots, build report) with `folder / "merged.h5"` built at 48x48."""
    base, roots = tiny_sample
    report = build_dataset(
        roots,
        base / "merged.h5",
        BuildOptions(render=RenderOptions(size=TINY_SIZE)),
        progress=False,
    )
    return base, roots, report
