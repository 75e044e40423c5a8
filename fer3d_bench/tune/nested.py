"""The inner folds: one fold's training subjects split into validation folds, its test apart.

A search scored on the test fold would make that fold's accuracy a score of the search, not of
the model. The manifest's (repetition, fold) gives the training and test subjects exactly as
`evaluate` trains them (the dataset checked against the manifest as `evaluate` checks it); only
the training subjects are dealt into `k` subject-independent inner folds, each in turn the
validation part of one inner split. The deal is `splits.assign`'s: subjects ranked by the sha256
of "tune-inner|1|<seed>|0|<subject id>", then dealt in turn, stratum by stratum of the
protocol's `balance` (sex, for BU-3DFE), so it depends on the seed and the subject ids alone,
never on a listing order or a library's random stream.

A protocol dealt by sample (`unit = "sample"`) is refused: its test samples' subjects train in
the same fold, so no validation fold made of its training samples could stand for unseen people,
and tuning on it would tune to the leak it exists to measure. Tune on its subject-independent
counterpart and evaluate the by-sample protocol with the configuration found there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench import splits as sp
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.manifests import CheckedManifest, items_of
from fer3d_bench.tune import TuneError

INNER = "tune-inner"  # the protocol name in every inner rank key


@dataclass(frozen=True)
class InnerFold:
    """One inner split: dataset indices to train on and to validate on."""

    train: np.ndarray
    validation: np.ndarray
    validation_subjects: tuple[str, ...]


@dataclass(frozen=True)
class NestedSplit:
    """A fold of a manifest with its training subjects' inner folds."""

    protocol: sp.Protocol
    manifest: sp.Manifest
    manifest_path: Path
    fingerprint: str  # the dataset's
    repetition: int
    fold: int
    test_subjects: tuple[str, ...]
    inner: tuple[InnerFold, ...]


def inner_assignment(protocol: sp.Protocol, items: list[sp.Item], k: int, seed: int) -> dict:
    """Subject -> inner fold (0..k-1) of the subjects of `items` (a fold's training samples)."""
    inner = sp.Protocol(
        name=INNER,
        version="1.0.0",
        datasets=protocol.datasets,
        classes=protocol.classes,
        kind="kfold",
        folds=k,
        seed=seed,
        balance=protocol.balance,
    )
    return sp.assign(inner, items)[0]


def nested_split(
    dataset: Path,
    protocol_name: str,
    manifests: Path,
    repetition: int,
    fold: int,
    k: int,
    seed: int,
) -> NestedSplit:
    """The fold's training subjects in `k` inner folds; refused unless the dataset matches the
    manifest exactly, or when the fold trains on fewer than `k` subjects."""
    if k < 2:
        raise TuneError(f"--inner-folds {k}: at least 2 are needed (one validates, one trains)")
    protocol = sp.load_protocol(protocol_name)
    if protocol.unit != "subject":
        raise TuneError(
            f"{protocol.source}: {protocol.name} deals its folds by {protocol.unit}, so its test "
            "subjects also train; nested tuning needs subject-independent folds: tune on its "
            "subject-independent counterpart and evaluate this one with that configuration"
        )
    with H5Dataset(dataset) as data:
        items = items_of(data)
        found = CheckedManifest.of_protocol(protocol_name, manifests).against(dataset, items)
        protocol, manifest, path = found.protocol, found.manifest, found.path
        if protocol.kind != "kfold" and fold != 0:
            raise TuneError(f"{path}: a {protocol.kind} protocol has one split; use --fold 0")
        train, test = manifest.fold_indices(data, repetition, fold)
        fingerprint = data.fingerprint
    folds = inner_assignment(protocol, [items[i] for i in train], k, seed)
    where = f"{path}, repetition {repetition}, {sp.fold_name(protocol.kind, fold)}"
    if len(folds) < k:
        raise TuneError(f"{where}: trains on {len(folds)} subjects, fewer than --inner-folds {k}")
    fold_of = np.array([folds[items[i].subject] for i in train], dtype=np.int64)
    inner = tuple(
        InnerFold(
            train=train[fold_of != j],
            validation=train[fold_of == j],
            validation_subjects=tuple(sorted(s for s, f in folds.items() if f == j)),
        )
        for j in range(k)
    )
    test_subjects = tuple(sorted({items[i].subject for i in test}))
    return NestedSplit(
        protocol, manifest, path, fingerprint, repetition, fold, test_subjects, inner
    )
