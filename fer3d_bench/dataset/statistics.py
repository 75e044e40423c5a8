"""Eq. 1's normalisation statistics of a fold, computed on its training samples only (no torch).

Shared by the trainer (`train.data`) and the public folds API (`fer3d_bench.folds`), so that a
model trained by other code is normalised exactly as ours is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fer3d_bench.dataset.reader import H5Dataset


@dataclass(frozen=True)
class Normalisation:
    """Eq. 1 of the paper: per-modality mean and std of the training fold, in [0, 1] units."""

    rgb_mean: tuple[float, float, float]
    rgb_std: tuple[float, float, float]
    depth_mean: float
    depth_std: float

    def as_dict(self) -> dict:
        return asdict(self)


def fold_statistics(data: H5Dataset, indices: np.ndarray) -> Normalisation:
    """Mean and std over every pixel of the training samples (background included)."""
    n = 0
    rgb_sum, rgb_sq = np.zeros(3), np.zeros(3)
    depth_sum = depth_sq = 0.0
    for index in indices:
        sample = data[int(index)]
        rgb = sample.rgb.reshape(-1, 3).astype(np.float64) / 255.0
        depth = sample.depth.astype(np.float64).ravel() / 65535.0
        n += len(depth)
        rgb_sum += rgb.sum(axis=0)
        rgb_sq += (rgb**2).sum(axis=0)
        depth_sum += depth.sum()
        depth_sq += (depth**2).sum()
    rgb_mean = rgb_sum / n
    depth_mean = depth_sum / n
    rgb_std = np.sqrt(np.maximum(rgb_sq / n - rgb_mean**2, 1e-12))
    depth_std = float(np.sqrt(max(depth_sq / n - depth_mean**2, 1e-12)))
    return Normalisation(
        tuple(float(v) for v in rgb_mean),
        tuple(float(v) for v in rgb_std),
        float(depth_mean),
        depth_std,
    )
