"""How the tune tests start `tune` (through click in this process, or as `python -m fer3d_bench`
workers) and what they assume of the `small` world's bu3dfe-legacy folds.

A module of its own, imported by name like `truth` and `handmade`: a test module that imported
these from a conftest would get whichever `conftest` module Python had loaded last.
"""

import os
import subprocess
import sys
from pathlib import Path

import optuna

from fer3d_bench.tune.storage import Heartbeat, open_storage

ROOT = Path(__file__).parents[1]

PROTOCOL = "bu3dfe-legacy"
# repetition 0, fold 0 of bu3dfe-legacy over these 3 subjects: F0001 is tested, F0002 and
# M0001 train, one per inner fold (the test `test_fold_zero_is_what_the_tests_assume` checks)
TEST_SUBJECT = "bu3dfe:F0001"


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
