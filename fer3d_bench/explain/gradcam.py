"""Grad-CAM of the reference model, one heatmap per stream, through the pytorch-grad-cam package.

The package's CAM classes take one input tensor and a model that returns logits; FerNet takes
two (RGB, depth) and returns (logits, embedding). `StackedInput` adapts it: one (B, 4, S, S)
tensor, RGB in channels 0-2 and depth in channel 3, logits out. The target layer of a stream is
its backbone's last feature stage (`feature_info` of timm's features_only EfficientNet names it:
`blocks.N`, the last inverted-residual stage, before the conv head that features_only drops):
the grid that the attention, the tokens and the classifier see. Each stream has its own CAM,
so the two heatmaps are never averaged together. The package min-max scales every heatmap to
[0, 1] and resizes it to the input's size.

Two methods: "gradcam" (Selvaraju et al., what the paper shows: channel weights from the
spatially averaged gradient), the default, and "hirescam" (Draelos & Carin: gradient times
activation, cell by cell). Measured on a toy whose class is a bright patch in one place of the
RGB image (tests/explain): with the pool head both methods put the true class's heat on the
patch on every seed tried (inside about 4-5.5x the heat outside its feature cell, the wrong
class's heat not on it); through the transformer head (the default) neither is reliable: on
most seeds tried the wrong class's heat lay on the patch. Read heatmaps of a transformer-head
model as weak evidence of where it looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from fer3d_bench.train.model import FerNet


class StackedInput(nn.Module):
    """FerNet behind the package's single-input API: (B, 4, S, S) -> logits (B, C)."""

    def __init__(self, model: FerNet):
        super().__init__()
        self.model = model

    def forward(self, stacked: Tensor) -> Tensor:
        return self.model(stacked[:, :3], stacked[:, 3:4])[0]


@dataclass
class Heatmaps:
    """Per sample: a heatmap per stream (S, S) in [0, 1], and the logits the model gave."""

    rgb: np.ndarray  # (N, S, S) float32
    depth: np.ndarray | None  # (N, S, S) float32; None when the model has no depth stream
    logits: np.ndarray  # (N, C) float32


def last_stage(backbone: nn.Module) -> nn.Module:
    """The module whose output is the backbone's last feature map (what FerNet uses)."""
    return backbone.get_submodule(backbone.feature_info.module_name()[-1])


def stream_layers(model: FerNet) -> dict[str, nn.Module]:
    """Stream name -> target layer: "rgb", and "depth" unless the model has no depth backbone."""
    layers = {"rgb": last_stage(model.rgb_backbone)}
    if model.depth_backbone is not None:
        layers["depth"] = last_stage(model.depth_backbone)
    return layers


METHODS = {"gradcam": GradCAM, "hirescam": HiResCAM}


def grad_cam(
    model: FerNet,
    rgb: Tensor,
    depth: Tensor,
    targets: Sequence[int],
    batch_size: int = 16,
    method: str = "gradcam",
) -> Heatmaps:
    """Grad-CAM of output `targets[i]` for sample i, per stream, from normalised inputs.

    rgb (N,3,S,S) and depth (N,1,S,S) as the training loop feeds them; the model is put in eval
    mode (the package does so), and the parameter gradients it leaves are cleared.
    """
    if len(targets) != len(rgb):
        raise ValueError(f"{len(targets)} targets for {len(rgb)} samples")
    wrapper = StackedInput(model)
    device = next(model.parameters()).device
    stacked = torch.cat([rgb, depth], dim=1).to(device)
    maps: dict[str, list[np.ndarray]] = {}
    logits = []
    for stream, layer in stream_layers(model).items():
        cam = METHODS[method](model=wrapper, target_layers=[layer])
        try:  # not `with`: the package's __exit__ would swallow an IndexError
            for start in range(0, len(stacked), batch_size):
                chunk = stacked[start : start + batch_size]
                wanted = [ClassifierOutputTarget(int(t)) for t in targets[start:][:batch_size]]
                maps.setdefault(stream, []).append(cam(input_tensor=chunk, targets=wanted))
                if stream == "rgb":
                    logits.append(cam.outputs.detach().float().cpu().numpy())
        finally:
            cam.activations_and_grads.release()
    model.zero_grad(set_to_none=True)
    joined = {stream: np.concatenate(parts).astype(np.float32) for stream, parts in maps.items()}
    return Heatmaps(joined["rgb"], joined.get("depth"), np.concatenate(logits).astype(np.float32))
