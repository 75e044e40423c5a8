"""What one training run trains and tests on: indices into a merged file, chosen before the loop.

Leaving flagged samples out is a choice of data, not of training: it is made here, where a
fold's training indices are chosen, so the loop trains on what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import Fer3dError


@dataclass(frozen=True)
class TrainingFold:
    dataset: Path
    train: np.ndarray  # indices into the merged file
    test: np.ndarray
    classes: tuple[str, ...] | None = None  # the classifier's outputs; None: the file's classes
    left_out: tuple[str, ...] = ()  # ids of flagged training samples not trained on


def training_fold(
    data: H5Dataset,
    train: np.ndarray,
    test: np.ndarray,
    classes=None,
    exclude_flagged: bool = False,
) -> TrainingFold:
    """The fold of an open merged file, without its flagged training samples if asked (the test
    samples stay the protocol's); refused when every training sample is flagged."""
    train = np.asarray(train, dtype=np.int64)
    left_out: tuple[str, ...] = ()
    if exclude_flagged:
        flagged = data.flagged[train]
        if len(train) and flagged.all():
            raise Fer3dError("every training sample of this fold is flagged low-quality")
        left_out = tuple(sorted(data.sample_ids[i] for i in train[flagged]))
        train = train[~flagged]
    names = None if classes is None else tuple(classes)
    return TrainingFold(Path(data.path), train, np.asarray(test, dtype=np.int64), names, left_out)
