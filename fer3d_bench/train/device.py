"""The device a fold trains on, resolved once on the machine that trains it."""

from __future__ import annotations

from dataclasses import replace

import torch

from fer3d_bench.errors import Fer3dError
from fer3d_bench.train.environment import AUTO, Placement


def resolve(placement: Placement) -> Placement:
    """The placement with "auto" made concrete, the memory layout with it; "cuda" refused where
    there is no CUDA device, and the speed levers that need one where it resolves to the CPU."""
    device = placement.device
    if device == AUTO:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise Fer3dError(f"--device {device} asked for, but no CUDA device is available")
    speed = placement.speed
    refused = speed.refusal(device)
    if refused:
        raise Fer3dError(refused)
    if speed.channels_last is None:
        speed = replace(speed, channels_last=device.startswith("cuda"))
    return replace(placement, device=device, speed=speed)


def torch_device(placement: Placement) -> torch.device:
    """The torch device of a resolved placement."""
    if not placement.resolved:
        raise Fer3dError("the placement's device must be resolved (train.device.resolve) first")
    return torch.device(placement.device)
