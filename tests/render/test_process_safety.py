"""A process that renders with OSMesa can still load the torch stack afterwards.

Mesa's llvmpipe and triton's bundled LLVM crash the interpreter when triton loads second; the
pyrender backend loads triton first. This runs in a fresh interpreter, since a crash would kill
the test process itself.
"""

import subprocess
import sys

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
