"""The evaluation tests' dataset: a 3-subject BU-3DFE sample with its manifests, built once."""

import os
import subprocess
from pathlib import Path

import pytest

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.synthetic import SampleConfig, make_sample

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
    items = items_from_h5(base / "merged.h5")
    for name in ("bu3dfe-legacy", "bu3dfe-full"):
        sp.write_manifest(sp.make_manifest(sp.load_protocol(name), items, "test"), base / "m")
    return base


@pytest.fixture(scope="session")
def small_config():
    return SMALL


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def slurm_conf():
    """The slurm.conf of the cluster scripts/slurm-cluster.sh started (never the ambient
    SLURM_CONF: the tests must not submit to a real cluster a developer happens to be on).

    Skipped, saying why, where none answers; under FER3D_REQUIRE_SLURM=1 (CI) that fails.
    """
    conf = Path(os.environ.get("FER3D_TEST_SLURM_CONF", ROOT / ".slurm" / "slurm.conf"))
    problem = None
    if not conf.exists():
        problem = f"no Slurm cluster: {conf} is missing (scripts/slurm-cluster.sh start)"
    else:
        env = {**os.environ, "SLURM_CONF": str(conf)}
        try:
            answer = subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=15)
            if answer.returncode != 0:
                problem = f"the Slurm cluster of {conf} does not answer: {answer.stderr.strip()}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"the Slurm cluster of {conf} does not answer: {exc}"
    if problem and os.environ.get("FER3D_REQUIRE_SLURM") == "1":
        pytest.fail(f"FER3D_REQUIRE_SLURM=1 but {problem}")
    if problem:
        pytest.skip(problem)
    return conf


@pytest.fixture
def on_slurm(slurm_conf, monkeypatch):
    """This test's commands talk to the test cluster; whatever it left queued is cancelled."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_conf))
    before = set(_queued())
    yield slurm_conf
    left = set(_queued()) - before
    if left:
        subprocess.run(["scancel", *sorted(left)], check=False)


def _queued() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True)
    return out.stdout.split()
