"""The benchmark's folds for any training code (no torch here).

For a protocol and a merged HDF5 file, `folds` lists every (repetition, fold) of the protocol's
manifest: the training and test samples as indices into the file and as ids, the protocol's
classes, and the fold's Eq. 1 normalisation statistics computed on its training samples only.
The dataset is checked against the manifest first, exactly as `evaluate` checks it, and refused
with the same message when it does not match. Torch datasets of a fold are in
`fer3d_bench.folds.datasets`, the only part that imports torch.

    from fer3d_bench.folds import folds

    for fold in folds("bu3dfe-full", "merged.h5"):
        fold.repetition, fold.fold, fold.train, fold.test, fold.classes
        fold.normalisation()   # mean and std of the training samples (Eq. 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import Normalisation, fold_statistics
from fer3d_bench.manifests import CheckedManifest, items_of
from fer3d_bench.splits import MANIFESTS_DIR


@dataclass(frozen=True)
class Fold:
    """One fold of one repetition of a protocol, on one merged file."""

    protocol: str
    repetition: int
    fold: int
    dataset: Path
    classes: tuple[str, ...]  # the protocol's, in the order a classifier's outputs take them
    train: np.ndarray  # indices into the merged file, sorted by sample id
    test: np.ndarray
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]

    def normalisation(self) -> Normalisation:
        """Eq. 1: per-modality mean and std over the fold's training samples only."""
        with H5Dataset(self.dataset) as data:
            return fold_statistics(data, self.train)


def folds(
    protocol: str,
    dataset: Path | str,
    manifests: Path | str = MANIFESTS_DIR,
    repetitions: int | None = None,
) -> list[Fold]:
    """Every (repetition, fold) of `protocol` on `dataset`, in order; the first `repetitions`
    only when given. Refuses a dataset that does not match the protocol's manifest."""
    dataset = Path(dataset)
    with H5Dataset(dataset) as data:
        found = CheckedManifest.of_protocol(protocol, Path(manifests))
        found.against(dataset, items_of(data))
        manifest, count = found.manifest, found.manifest.repetitions
        listed = []
        for repetition in range(count if repetitions is None else min(repetitions, count)):
            for fold in range(found.protocol.folds_per_repetition):
                train, test = manifest.fold_indices(data, repetition, fold)
                listed.append(
                    Fold(
                        protocol=found.protocol.name,
                        repetition=repetition,
                        fold=fold,
                        dataset=dataset,
                        classes=tuple(manifest.classes),
                        train=train,
                        test=test,
                        train_ids=tuple(data.sample_ids[i] for i in train),
                        test_ids=tuple(data.sample_ids[i] for i in test),
                    )
                )
    return listed
