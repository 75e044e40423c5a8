"""The tuning tests' dataset (a 3-subject BU-3DFE sample with its bu3dfe-legacy manifest) and
how they start `tune`: through click in this process, or as `python -m fer3d_bench` workers."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.synthetic import SampleConfig, make_sample
from fer3d_bench.tune.storage import Heartbeat, open_storage

ROOT = Path(__file__).parents[2]

SMALL = SampleConfig(
    seed=31,
    bu3dfe_subjects=3,
    bosphorus_subjects=0,
    cald3r_subjects=0,
    mend3s_subjects=0,
)
PROTOCOL = "bu3dfe-legacy"
# repetition 0, fold 0 of bu3dfe-legacy over these 3 subjects: F0001 is tested, F0002 and
# M0001 train, one per inner fold (the test `test_fold_zero_is_what_the_tests_assume` checks)
TEST_SUBJECT = "bu3dfe:F0001"


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """A folder with merged.h5 (64 px) and m/bu3dfe-legacy/1.0.0.json."""
    base = tmp_path_factory.mktemp("tune")
    make_sample(base / "sample", SMALL, workers=1, progress=False)
    build_dataset(
        {"bu3dfe": base / "sample" / "bu3dfe"},
        base / "merged.h5",
        BuildOptions(render=RenderOptions(size=64)),
        render_dir=base / "render",
        progress=False,
    )
    items = items_from_h5(base / "merged.h5")
    sp.write_manifest(sp.make_manifest(sp.load_protocol(PROTOCOL), items, "test"), base / "m")
    return base


@pytest.fixture(autouse=True)
def one_thread():
    """Two shared cores: torch's own thread pool only waits on itself (several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tune_args(data: Path, folder: Path, storage: str, trials: int, *more: str) -> list[str]:
    """`tune` on the sample's fold 0 with the tiny preset, one epoch, two inner folds."""
    args = ["tune", "--dataset", str(data / "merged.h5"), "--protocol", PROTOCOL]
    args += ["--manifests", str(data / "m"), "--trials", str(trials), "--storage", storage]
    args += ["--preset", "tiny", "--epochs", "1", "--inner-folds", "2", "--device", "cpu"]
    args += ["--out", str(folder / "best.toml"), "--heartbeat-interval", "1"]
    return [*args, "--grace-period", "2", *more]


def start_worker(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m fer3d_bench ARGS` as a separate process, its output in `log`."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    with open(log, "w") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "fer3d_bench", *args],
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,  # `-m` puts it first on sys.path: this checkout's fer3d_bench
        )


def load_study(storage: str, name: str = f"{PROTOCOL}-tiny-r0-f0") -> optuna.Study:
    """The study as another process sees it (storages opened as `tune` opens them)."""
    return optuna.load_study(study_name=name, storage=open_storage(storage, Heartbeat(1, 2)))
