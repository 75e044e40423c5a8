"""Grad-CAM through the grad-cam package, tested where the answer is known: a toy whose class is
decided by a small bright patch in one place; the heat must lie on the patch."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from fer3d_bench.explain.gradcam import grad_cam, stream_layers
from fer3d_bench.train.config import PRESETS
from fer3d_bench.train.model import FerNet

SIZE, PATCH = 128, (slice(6, 26), slice(6, 26))  # 20 px, inside one 32 px feature cell


def toy(n: int, generator: torch.Generator, stream: str):
    """Noise images; class 1 has the bright patch in one stream (`stream`), class 0 has none."""
    labels = torch.arange(n) % 2
    rgb = torch.rand(n, 3, SIZE, SIZE, generator=generator) * 0.5
    depth = torch.rand(n, 1, SIZE, SIZE, generator=generator) * 0.5
    patched = rgb if stream == "rgb" else depth
    patched[labels == 1, :, PATCH[0], PATCH[1]] = 1.0
    return (rgb - 0.3) / 0.3, (depth - 0.3) / 0.3, labels


def trained_model(stream: str):
    torch.manual_seed(0)
    model = FerNet(replace(PRESETS["tiny"].model, input_size=SIZE, num_classes=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(60):
        rgb, depth, labels = toy(16, generator, stream)
        loss = torch.nn.functional.cross_entropy(model(rgb, depth)[0], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("stream", ["rgb"])
def test_the_heat_lies_on_the_patch_that_decides_the_class(stream):
    """The patch is in the RGB stream only: its heat must lie on it. (With the patch in depth
    alone, which reaches the decision only through the attention mask, the depth heat did not
    find it: median ratio about 1.2, 2 of 12 peaks on the patch; the README says so.)"""
    model = trained_model(stream)
    rgb, depth, labels = toy(24, torch.Generator().manual_seed(2), stream)
    with torch.no_grad():
        accuracy = (model(rgb, depth)[0].argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95  # it learned the rule, so there is something to explain
    ones = labels == 1
    n = int(ones.sum())
    maps = grad_cam(model, rgb[ones], depth[ones], [1] * n)
    assert maps.rgb.shape == (n, SIZE, SIZE) and maps.depth.shape == maps.rgb.shape
    assert np.array_equal(maps.logits.argmax(1), np.ones(n))
    heat = maps.rgb if stream == "rgb" else maps.depth
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    inside = np.zeros((SIZE, SIZE), bool)
    inside[PATCH] = True
    near = np.zeros((SIZE, SIZE), bool)
    near[:40, :40] = True  # the patch's feature cell (the heat is upsampled from the 4x4 grid)
    ratio = heat[:, inside].mean(axis=1) / heat[:, ~near].mean(axis=1).clip(1e-6)
    on_patch = np.mean([near[np.unravel_index(h.argmax(), h.shape)] for h in heat])
    assert np.median(ratio) > 2.5 and on_patch >= 0.7, (np.round(ratio, 2), on_patch)


def test_each_stream_has_its_own_target_layer():
    model = FerNet(replace(PRESETS["tiny"].model, num_classes=2))
    layers = stream_layers(model)
    assert set(layers) == {"rgb", "depth"} and layers["rgb"] is not layers["depth"]
    rgb_only = FerNet(replace(PRESETS["tiny"].model, num_classes=2, fusion="rgb-attention"))
    assert set(stream_layers(rgb_only)) == {"rgb"}
