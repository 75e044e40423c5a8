"""The Slurm cluster of the `slurm` tests (test_slurm.py): its slurm.conf, and a test's commands
pointed at it. The evaluation tests' dataset is the session's `small` world (tests/conftest.py)."""

import os
import subprocess
from pathlib import Path

import pytest

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
