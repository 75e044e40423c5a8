"""The device a fold trains on, resolved once on the machine that trains it."""

from __future__ import annotations

import torch

from fer3d_bench.errors import Fer3dError
from fer3d_bench.train.environment import AUTO, Placement


def resolve(placement: Placement) -> Placement:
    """The placement with "auto" made concrete; "cuda" refused where there is no CUDA device."""
    device = placement.device
    if device == AUTO:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise Fer3dError(f"--device {device} asked for, but no CUDA device is available")
    return Placement(device, placement.threads, placement.progress)


def torch_device(placement: Placement) -> torch.device:
    """The torch device of a resolved placement."""
    if not placement.resolved:
        raise Fer3dError("the placement's device must be resolved (train.device.resolve) first")
    return torch.device(placement.device)
