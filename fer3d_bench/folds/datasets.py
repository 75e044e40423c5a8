"""Torch datasets of a fold (`folds.Fold`): the one part of the folds API that imports torch.

Each item is (rgb (3,S,S) float, depth (1,S,S) float, label, sample id): normalised with the
fold's Eq. 1 statistics (of its training samples), the label an index into the protocol's
classes. With `augment`, the training set applies the reference model's joint augmentation
(the same angle, flip and erased box on both images; colour on RGB only), seeded per sample.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.folds import Fold
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset, class_outputs


class FoldSamples(Dataset):
    """A fold's training or test samples as (rgb, depth, label, sample id)."""

    def __init__(self, samples: FerTorchDataset, ids: tuple[str, ...]):
        self.samples, self.ids = samples, ids

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, k: int):
        rgb, depth, label = self.samples[k]
        return rgb, depth, label, self.ids[k]

    def set_epoch(self, epoch: int) -> None:
        """Draw a new augmentation of each sample (seeded by epoch and sample)."""
        self.samples.set_epoch(epoch)


def torch_datasets(
    fold: Fold, size: int | None = None, augment: bool = False, seed: int = 0
) -> tuple[FoldSamples, FoldSamples]:
    """(training set, test set) of a fold, read from its merged file (opened on first read) at
    `size` px (default: the file's); the test set is never augmented."""
    norm = fold.normalisation()
    data = H5Dataset(fold.dataset)
    size = size or data[int(fold.train[0])].rgb.shape[0]
    _, labels = class_outputs(data, list(fold.classes), fold.train, fold.test)
    extra = AugmentConfig() if augment else None
    train = FerTorchDataset(data, fold.train, norm, size, extra, seed, labels)
    test = FerTorchDataset(data, fold.test, norm, size, None, seed, labels)
    return FoldSamples(train, fold.train_ids), FoldSamples(test, fold.test_ids)
