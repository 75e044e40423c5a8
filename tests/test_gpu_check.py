"""scripts/gpu-check.sh, the one device check, on a machine without a GPU (as CI is): which
Python it runs with when the checkout has no .venv (a bare GPU machine's own python3), and that
it refuses, in one line, a python3 that cannot run the check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-check.sh"


def python3_on_path(folder: Path, blocked: tuple[str, ...] = (), torch: bool = True) -> dict:
    """An environment whose `python3` is this interpreter, without the modules `blocked` (a
    sitecustomize refuses them), or a python3 that has no torch at all."""
    folder.mkdir()
    if torch:
        (folder / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    else:
        (folder / "python3").write_text("#!/bin/sh\nexit 1\n")  # a python3 that imports nothing
    (folder / "python3").chmod(0o755)
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = {blocked!r}\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is not on this machine')\n"
        "sys.meta_path.insert(0, Blocker())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FER3D_REQUIRE_CUDA", "OUT")}
    env.update(
        PATH=f"{folder}{os.pathsep}{env['PATH']}",
        PYTHONPATH=str(folder),
        VENV=str(folder / "no-venv"),  # the checkout "has no .venv"
        GPU_CHECK_SITE=str(folder / "site"),
        CUDA_TESTS_TIMEOUT="200",
    )
    return env


def run(env: dict, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**env, "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=420,
    )


def test_without_a_venv_it_runs_with_the_machines_python3(tmp_path):
    if _cuda_here():
        pytest.fail("this test expects a machine without a GPU (it checks the skip path)")
    env = python3_on_path(tmp_path / "bin")
    result = run(env, tmp_path / "out")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "gpu-check: no .venv: python" in result.stdout
    assert "the checkout on PYTHONPATH" in result.stdout
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert summary.count("skipped  test_cuda_") >= 10  # collected and skipped, not errored
    assert "no CUDA device" in summary and summary.rstrip().endswith("result: OK")


def test_a_python3_without_what_the_check_imports_is_refused_naming_it(tmp_path):
    env = python3_on_path(tmp_path / "bin", blocked=("submitit", "pytorch_grad_cam"))
    result = run(env, tmp_path / "out")
    assert result.returncode == 2
    assert "python3 lacks: submitit pytorch_grad_cam" in result.stderr
    assert "scripts/gpu-wheels.sh" in result.stderr
    assert not (tmp_path / "out" / "cuda-tests.xml").exists()  # refused before running anything


def test_a_python3_without_torch_is_refused_in_one_line(tmp_path):
    env = python3_on_path(tmp_path / "bin", torch=False)
    result = run(env, tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "python3 has no PyTorch" in result.stderr


def _cuda_here() -> bool:
    import torch

    return torch.cuda.is_available()
