"""The torch side of the merged HDF5 file: normalisation, joint augmentation, batches.

Augmentation is drawn from a generator seeded by (seed, epoch, sample index), so a sample gets
the same transform whatever the worker count or the order it is read in; that keeps training
deterministic on CPU and makes a resumed run identical to an uninterrupted one.

Two ways to batch the same samples: a DataLoader over `FerTorchDataset` (read from the file,
augmented on the CPU), or `ResidentDataset` + `ResidentBatches` (the fold read once into tensors
on the training device, each batch taken from them by position and augmented there, for a GPU
that trains several folds at once). Both give the same batches in the same order: the same
shuffle, the same per-sample draws, the same transform.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import Normalisation
from fer3d_bench.errors import Fer3dError


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
        zero = torch.zeros((), device=rgb.device)
        rgb = TF.erase(rgb, top, left, h, w, zero)
        depth = TF.erase(depth, top, left, h, w, zero)
    return rgb, depth


class ResidentDataset(FerTorchDataset):
    """The same samples as `FerTorchDataset`, read once into tensors on `device`.

    RGB stays uint8 and depth 16-bit as stored (depth is held as int16 bits: uint16 tensors
    have too few kernels), so a fold of 648 pairs at 260 px takes about 220 MB. `batch` converts,
    resizes, augments and normalises on that device exactly as `__getitem__` of the parent does
    per sample: the same operations on tensors of the same layout, the augmentation sample by
    sample through `_augment` with the same generators (their draws stay on the CPU).
    """

    def __init__(self, data: H5Dataset, *args, device: torch.device | str = "cpu", **kwargs):
        """The parent's arguments, and the device to hold the samples on."""
        super().__init__(data, *args, **kwargs)
        self.device = torch.device(device)
        first = data[0]  # the file's image size
        n = len(self.indices)
        rgb = np.empty((n, *first.rgb.shape), np.uint8)
        depth = np.empty((n, *first.depth.shape), np.uint16)
        labels = np.empty(n, np.int64)
        for k, index in enumerate(self.indices):
            sample = data[int(index)]
            rgb[k], depth[k], labels[k] = sample.rgb, sample.depth, sample.label
        if self.label_map is not None:
            labels = self.label_map[labels]
        try:
            self.rgb = torch.from_numpy(rgb).to(self.device)  # (N, S, S, 3) uint8, as stored
            self.depth = torch.from_numpy(depth.view(np.int16)).to(self.device)  # (N, S, S)
            self.labels = torch.from_numpy(labels).to(self.device)
        except torch.cuda.OutOfMemoryError:
            raise Fer3dError(
                f"the {n} samples ({(rgb.nbytes + depth.nbytes) / 2**20:.0f} MiB) do not fit "
                f"on {self.device}: train fewer folds at once there, or without resident data"
            ) from None

    def batch(self, positions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rgb (B,3,S,S), depth (B,1,S,S), labels (B,)) on the device, of these positions."""
        positions = torch.as_tensor(positions, dtype=torch.int64)
        at = positions.to(self.device)
        # the parent's steps, on a batch: the same layouts (RGB channels-last, as permuted from
        # the file's H,W,C), the same elementwise operations
        rgb = self.rgb[at].permute(0, 3, 1, 2).float() / 255.0
        depth = (self.depth[at].to(torch.int32) & 0xFFFF).float()[:, None] / 65535.0
        if rgb.shape[-1] != self.size:
            rgb = F.interpolate(rgb, size=self.size, mode="area")
            depth = F.interpolate(depth, size=self.size, mode="nearest-exact")
        if self.augment is not None:
            pairs = [
                _augment(rgb[j], depth[j], self.augment, self._generator(k))
                for j, k in enumerate(positions.tolist())
            ]
            rgb = torch.stack([pair[0] for pair in pairs])
            depth = torch.stack([pair[1] for pair in pairs])
        rgb = TF.normalize(rgb, list(self.norm.rgb_mean), list(self.norm.rgb_std))
        depth = (depth - self.norm.depth_mean) / self.norm.depth_std
        return rgb, depth, self.labels[at]

    def __getitem__(self, k: int):
        rgb, depth, label = self.batch([k])
        return rgb[0], depth[0], int(label[0])


class ResidentBatches:
    """The batches of a `ResidentDataset`, in the order a DataLoader over it would give them.

    The order comes from a DataLoader over the positions themselves, built as the training
    loop's is (same batch size, same shuffle generator, no generator when not shuffling), so the
    permutation, and each draw it takes from the shuffle generator or torch's global generator,
    are the DataLoader's own.
    """

    def __init__(self, dataset: ResidentDataset, batch_size: int, shuffle_seed: int | None):
        self.dataset = dataset
        generator = None
        if shuffle_seed is not None:
            generator = torch.Generator().manual_seed(shuffle_seed)
        self.order = torch.utils.data.DataLoader(
            range(len(dataset)),
            batch_size=batch_size,
            shuffle=shuffle_seed is not None,
            generator=generator,
        )

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        for positions in self.order:
            yield self.dataset.batch(positions)


def class_outputs(data: H5Dataset, names: list[str], *index_sets) -> tuple[list[int], np.ndarray]:
    """(dataset class index of each output, dataset label -> output index or -1)."""
    unknown = [n for n in names if n not in data.classes]
    if unknown or len(set(names)) != len(names):
        raise Fer3dError(f"classes {names} are not distinct classes of {data.path}")
    outputs = [list(data.classes).index(n) for n in names]
    label_map = np.full(len(data.classes), -1, dtype=np.int64)
    label_map[outputs] = np.arange(len(outputs))
    for indices in index_sets:
        stray = sorted({data.classes[k] for k in data.labels[indices] if label_map[k] < 0})
        if stray:
            raise Fer3dError(f"the fold holds samples of {stray}, which are not among {names}")
    return outputs, label_map
