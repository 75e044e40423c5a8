"""Grad-CAM on CUDA gives the CPU's heatmaps (tests/explain tests what they show)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from fer3d_bench.explain.gradcam import grad_cam
from fer3d_bench.train.config import PRESETS
from fer3d_bench.train.model import FerNet

pytestmark = pytest.mark.cuda


def test_gradcam_on_cuda_is_the_cpus(exact):
    torch.manual_seed(0)
    model = FerNet(replace(PRESETS["tiny"].model, input_size=64, num_classes=3, head="pool"))
    generator = torch.Generator().manual_seed(1)
    rgb = torch.randn(6, 3, 64, 64, generator=generator)
    depth = torch.randn(6, 1, 64, 64, generator=generator)
    targets = [0, 1, 2, 0, 1, 2]
    cpu = grad_cam(model.eval(), rgb, depth, targets)
    gpu = grad_cam(model.to("cuda"), rgb, depth, targets)  # inputs moved by grad_cam
    assert next(model.parameters()).device.type == "cuda"
    np.testing.assert_allclose(gpu.logits, cpu.logits, atol=1e-4, rtol=1e-4)
    for ours, theirs in ((gpu.rgb, cpu.rgb), (gpu.depth, cpu.depth)):
        assert ours.shape == theirs.shape == (6, 64, 64)
        assert np.isfinite(ours).all() and ours.max() > 0  # a map, not a blank
        assert alike(ours, theirs)
    # the check can fail: another target's maps are others
    other = grad_cam(model, rgb, depth, [1, 2, 0, 1, 2, 0])
    assert not alike(other.rgb, cpu.rgb)


def alike(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Nearly every pixel within 0.02: each map is scaled to [0, 1] by its own range, which
    magnifies the kernels' rounding where a map is nearly flat."""
    return float(np.mean(np.abs(ours - theirs) <= 2e-2)) >= 0.99
