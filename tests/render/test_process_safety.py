"""Rendering processes: one that renders with OSMesa can still load the torch stack afterwards,
and `render-depth`'s workers end when the command is killed.

Mesa's llvmpipe and triton's bundled LLVM crash the interpreter when triton loads second; the
pyrender backend loads triton first. This runs in a fresh interpreter, since a crash would kill
the test process itself.
"""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from fer3d_bench.workers import available_cpus

ENV = dict(os.environ, FER3D_PROGRESS="off")

SCRIPT = """
import numpy as np
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.camera import OrthoCamera
with make_renderer("pyrender", 32, 32) as renderer:
    z = renderer.render(np.array([[0, 0, 0], [9, 0, 0], [0, 9, 1.0]]), np.array([[0, 1, 2]]),
                        OrthoCamera(2.0, 4.0, 28.0))
import torchvision, timm, torch
print(int(np.isfinite(z).sum()), float(torch.ones(2).sum()))
"""


def test_render_then_import_torchvision_does_not_crash():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pixels, total = done.stdout.split()
    assert int(pixels) > 100 and float(total) == 2.0


def test_render_workers_end_when_the_command_is_killed(tiny_sample, tmp_path):
    # --workers N starts N - 1 helpers, N capped by the CPUs available (workers.cap_workers)
    helpers = min(2, available_cpus() - 1)
    if helpers < 1:
        pytest.skip("one CPU available: render-depth starts no worker process to end")
    _, roots = tiny_sample
    command = [sys.executable, "-m", "fer3d_bench", "render-depth", str(roots["bu3dfe"])]
    workers = str(helpers + 1)
    parent = subprocess.Popen(
        [*command, "--dataset", "bu3dfe", "--out", str(tmp_path / "r"), "--workers", workers],
        env=ENV | {"PYOPENGL_PLATFORM": "osmesa"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    children = []
    while len(children) < helpers and time.monotonic() < deadline and parent.poll() is None:
        children = [c for c in psutil.Process(parent.pid).children() if _python(c)]
        time.sleep(0.05)
    assert len(children) >= helpers, "render-depth never started its workers"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:  # so that a failure here leaves no orphan behind
        child.kill()
    assert alive == [], [c.pid for c in alive]


def _python(process: psutil.Process) -> bool:
    try:
        return "python" in process.name() and "resource_tracker" not in " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return False
