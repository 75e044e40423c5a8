"""The torch side of the merged HDF5 file: normalisation, joint augmentation, batches.

Augmentation is drawn from a generator seeded by (seed, epoch, sample index), so a sample gets
the same transform whatever the worker count or the order it is read in; that keeps training
deterministic on CPU and makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from fer3d_bench.dataset import H5Dataset


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 10.0  # uniform in [-r, r], RGB and depth together
    hflip: float = 0.5
    erase_p: float = 0.5  # random erasing of the same region in both
    erase_area: tuple[float, float] = (0.02, 0.15)
    brightness: float = 0.2  # colour jitter, RGB only
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02


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


class FerTorchDataset(torch.utils.data.Dataset):
    """(rgb (3,S,S), depth (1,S,S), label) tensors, normalised, augmented if asked."""

    def __init__(
        self,
        data: H5Dataset,
        indices: np.ndarray,
        normalisation: Normalisation,
        size: int,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        label_map: np.ndarray | None = None,
    ):
        self.data = data
        self.label_map = label_map  # dataset label -> model output index (a protocol's classes)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.norm = normalisation
        self.size = size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        sample = self.data[int(self.indices[k])]
        rgb = torch.from_numpy(np.ascontiguousarray(sample.rgb)).permute(2, 0, 1).float() / 255.0
        depth = torch.from_numpy(sample.depth.astype(np.float32))[None] / 65535.0
        if rgb.shape[-1] != self.size:
            rgb = F.interpolate(rgb[None], size=self.size, mode="area")[0]
            depth = F.interpolate(depth[None], size=self.size, mode="nearest-exact")[0]
        if self.augment is not None:
            rgb, depth = _augment(rgb, depth, self.augment, self._generator(k))
        rgb = TF.normalize(rgb, list(self.norm.rgb_mean), list(self.norm.rgb_std))
        depth = (depth - self.norm.depth_mean) / self.norm.depth_std
        label = sample.label if self.label_map is None else int(self.label_map[sample.label])
        return rgb, depth, label

    def _generator(self, k: int) -> torch.Generator:
        key = f"{self.seed}|{self.epoch}|{int(self.indices[k])}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        return torch.Generator().manual_seed(seed)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _augment(rgb, depth, config: AugmentConfig, generator: torch.Generator):
    """Geometry on both images (same angle, flip, erased box); colour on RGB alone."""
    angle = _uniform(generator, -config.rotation_deg, config.rotation_deg)
    if config.rotation_deg > 0:
        rgb = TF.rotate(rgb, angle, interpolation=InterpolationMode.BILINEAR)
        depth = TF.rotate(depth, angle, interpolation=InterpolationMode.NEAREST)
    if float(torch.rand((), generator=generator)) < config.hflip:
        rgb, depth = TF.horizontal_flip(rgb), TF.horizontal_flip(depth)
    factors = [
        _uniform(generator, 1 - config.brightness, 1 + config.brightness),
        _uniform(generator, 1 - config.contrast, 1 + config.contrast),
        _uniform(generator, 1 - config.saturation, 1 + config.saturation),
        _uniform(generator, -config.hue, config.hue),
    ]
    jitters = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    amounts = (config.brightness, config.contrast, config.saturation, config.hue)
    for jitter, amount, factor in zip(jitters, amounts, factors, strict=True):
        if amount > 0:  # draws stay the same either way, so switching one off changes no other
            rgb = jitter(rgb, factor)
    rgb = rgb.clamp(0, 1)
    if float(torch.rand((), generator=generator)) < config.erase_p:
        size = rgb.shape[-1]
        area = _uniform(generator, *config.erase_area) * size * size
        aspect = np.exp(_uniform(generator, np.log(0.5), np.log(2.0)))
        h = min(size, max(1, round(np.sqrt(area * aspect))))
        w = min(size, max(1, round(np.sqrt(area / aspect))))
        top = int(torch.randint(0, size - h + 1, (), generator=generator))
        left = int(torch.randint(0, size - w + 1, (), generator=generator))
        rgb = TF.erase(rgb, top, left, h, w, torch.tensor(0.0))
        depth = TF.erase(depth, top, left, h, w, torch.tensor(0.0))
    return rgb, depth
