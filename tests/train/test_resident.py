"""Resident data (the fold held on the training device, batched and augmented there) gives the
DataLoader's batches in the DataLoader's order, so a run trains the same either way."""

import numpy as np
import pytest
import torch

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import fold_statistics
from fer3d_bench.errors import Fer3dError
from fer3d_bench.train import loop
from fer3d_bench.train.checkpoint import CHECKPOINT, read_checkpoint
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset, ResidentBatches, ResidentDataset
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold

# augmentation on (the tiny preset turns it off), two batches per accumulation window, and a
# last batch shorter than the others (20 training samples, batches of 6)
CONFIG = with_overrides(
    PRESETS["tiny"], epochs=2, batch_size=6, effective_batch=12, augment=True, seed=4
)
TRAIN, TEST = np.arange(0, 20), np.arange(20, 26)


@pytest.fixture(scope="module")
def h5(tiny_merged):
    base, _, _ = tiny_merged
    return base / "merged.h5"


def _both(data, size, augment, seed=CONFIG.seed):
    """(loader-path dataset, resident dataset) of the training samples, alike in all else."""
    norm = fold_statistics(data, TRAIN)
    label_map = np.arange(len(data.classes))[::-1].copy()  # a protocol's own output order
    args = (data, TRAIN, norm, size, augment, seed, label_map)
    return FerTorchDataset(*args), ResidentDataset(*args, device="cpu")


def _batches(dataset, epoch, config=CONFIG):
    dataset.set_epoch(epoch)
    return list(loop._loader(dataset, config, shuffle_seed=config.seed * 1000 + epoch))


# 48: the file's size, read as stored; 64: resized on the way, as the tiny preset does
@pytest.mark.parametrize("size", [48, 64])
def test_resident_batches_are_the_loaders_batches_with_augmentation(h5, size):
    with H5Dataset(h5) as data:
        plain, resident = _both(data, size, AugmentConfig())
        assert isinstance(loop._loader(resident, CONFIG, None), ResidentBatches)
        for epoch in (0, 1):
            theirs, ours = _batches(plain, epoch), _batches(resident, epoch)
            assert len(ours) == len(theirs) == 4
            assert [len(b[2]) for b in ours] == [6, 6, 6, 2]
            for (rgb, depth, labels), (our_rgb, our_depth, our_labels) in zip(
                theirs, ours, strict=True
            ):
                assert our_rgb.shape == rgb.shape == (len(labels), 3, size, size)
                assert our_depth.shape == depth.shape == (len(labels), 1, size, size)
                assert torch.equal(our_rgb, rgb) and torch.equal(our_depth, depth)
                assert torch.equal(our_labels, labels)
        # the comparison can fail: another epoch's draws, another shuffle, no augmentation
        # all give other batches
        assert not torch.equal(_batches(resident, 0)[0][0], _batches(resident, 1)[0][0])
        other_seed = with_overrides(CONFIG, seed=5)
        assert not torch.equal(_batches(resident, 1, other_seed)[0][0], ours[0][0])
        _, unaugmented = _both(data, size, None)
        assert not torch.equal(_batches(unaugmented, 1)[0][0], ours[0][0])


def test_resident_batches_take_the_loaders_draws_from_the_global_generator(h5):
    """Unshuffled (the test pass), a DataLoader seeds its iterator from torch's global
    generator, which dropout draws from next: the resident path must draw the same."""
    with H5Dataset(h5) as data:
        plain, resident = _both(data, 48, None)
        states = []
        for dataset in (plain, resident):
            torch.manual_seed(0)
            batches = list(loop._loader(dataset, CONFIG, shuffle_seed=None))
            states.append(torch.get_rng_state())
            order = torch.cat([b[2] for b in batches])
        assert torch.equal(states[0], states[1])
        assert torch.equal(order, torch.from_numpy(resident.labels.numpy()))  # in file order


def test_training_with_resident_data_is_the_same_run(h5, tmp_path, monkeypatch):
    chosen = []
    real_setup = loop.build_fit

    def setup(*args):
        fit = real_setup(*args)
        chosen.append((type(fit.train_set), type(fit.test_set)))
        return fit

    monkeypatch.setattr(loop, "build_fit", setup)

    def run(out, **kwargs):
        return loop.train(TrainingFold(h5, TRAIN, TEST), out, CONFIG, Placement("cpu"), **kwargs)

    plain = run(tmp_path / "loader")  # automatic: a DataLoader on the CPU
    resident = run(tmp_path / "resident", resident=True)
    assert chosen == [(FerTorchDataset, FerTorchDataset), (ResidentDataset, ResidentDataset)]
    # one epoch with resident data, resumed from its checkpoint through the DataLoader
    run(tmp_path / "mixed", resident=True, stop_after=1)
    mixed = run(tmp_path / "mixed", resident=False)

    def timeless(history):
        return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]

    assert len(plain.history) == 2
    for other in (resident, mixed):
        assert timeless(other.history) == timeless(plain.history)
        assert other.predictions == plain.predictions
        assert other.embeddings.keys() == plain.embeddings.keys()
        for sample, vector in plain.embeddings.items():
            assert np.array_equal(other.embeddings[sample], vector), sample
    saved = {
        name: read_checkpoint(tmp_path / name / CHECKPOINT)
        for name in ("loader", "resident", "mixed")
    }
    for name in ("resident", "mixed"):
        for key, value in saved["loader"]["model"].items():
            assert torch.equal(saved[name]["model"][key], value), (name, key)
        assert torch.equal(saved[name]["rng"], saved["loader"]["rng"])


def test_a_fold_that_does_not_fit_on_the_device_is_named(h5, monkeypatch):
    def full(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")

    with H5Dataset(h5) as data:
        norm = fold_statistics(data, TRAIN)
        monkeypatch.setattr(torch.Tensor, "to", full)
        with pytest.raises(Fer3dError, match="20 samples .* do not fit on cpu"):
            ResidentDataset(data, TRAIN, norm, 48, device="cpu")
