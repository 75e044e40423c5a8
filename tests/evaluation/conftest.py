"""The evaluation tests' dataset: a 3-subject BU-3DFE sample with its manifests, built once."""

import pytest

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.sample import SampleConfig, make_sample

SMALL = SampleConfig(
    seed=31,
    bu3dfe_subjects=3,
    bosphorus_subjects=0,
    cald3r_subjects=0,
    mend3s_subjects=0,
)


@pytest.fixture(scope="session")
def small(tmp_path_factory):
    """A 3-subject BU-3DFE sample at 64 px with its bu3dfe-legacy and bu3dfe-full manifests."""
    base = tmp_path_factory.mktemp("evaluate")
    make_sample(base / "sample", SMALL, workers=1, progress=False)
    build_dataset(
        {"bu3dfe": base / "sample" / "bu3dfe"},
        base / "merged.h5",
        BuildOptions(render=RenderOptions(size=64)),
        render_dir=base / "render",
        progress=False,
    )
    items = sp.items_from_h5(base / "merged.h5")
    for name in ("bu3dfe-legacy", "bu3dfe-full"):
        sp.write_manifest(sp.make_manifest(sp.load_protocol(name), items, "test"), base / "m")
    return base


@pytest.fixture(scope="session")
def small_config():
    return SMALL
