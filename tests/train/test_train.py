"""The training loop on the generated sample: it learns, it resumes exactly, it logs."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from worlds import LEARN

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import fold_statistics
from fer3d_bench.errors import Fer3dError
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.loop import train

CPU = Placement("cpu")


@pytest.fixture(scope="module")
def learn(worlds):
    """(folder, training indices, test indices) of fold 0 of cald3r-mend3s over the `LEARN`
    world (64 px)."""
    base = worlds.world(LEARN, 64).folder
    with H5Dataset(base / "merged.h5") as data:
        items = items_from_h5(base / "merged.h5")
        manifest = sp.make_manifest(sp.load_protocol("cald3r-mend3s"), items, "test")
        train_idx, test_idx = manifest.fold_indices(data, 0, 0)
    return base, train_idx, test_idx


def test_folds_are_subject_independent(learn):
    base, train_idx, test_idx = learn
    with H5Dataset(base / "merged.h5") as data:
        assert not set(data.subjects[train_idx]) & set(data.subjects[test_idx])
        assert len(train_idx) + len(test_idx) == len(data)


def test_reference_model_learns_far_above_chance(learn, tmp_path):
    base, train_idx, test_idx = learn
    config = with_overrides(PRESETS["tiny"], epochs=14)
    result = train(TrainingFold(base / "merged.h5", train_idx, test_idx), tmp_path, config, CPU)
    # 7 classes: chance is 14 %; a pipeline with shuffled labels, broken alignment of labels and
    # images or no learning stays near it.
    assert result.test_accuracy >= 0.5, [r["test_accuracy"] for r in result.history]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 14
    record = json.loads(lines[-1])
    assert {
        "loss_ce",
        "loss_center",
        "loss_island",
        "train_accuracy",
        "test_accuracy",
        "lr_backbone",
        "lr_head",
    } <= set(record)
    assert record["lr_backbone"] == pytest.approx(1e-6, rel=1e-3)  # one-cycle ends at 1e-6
    assert max(json.loads(x)["lr_head"] for x in lines) > 1e-3
    with H5Dataset(base / "merged.h5") as data:
        assert set(result.predictions) == {data.sample_ids[i] for i in test_idx}


def test_resume_gives_the_same_weights_as_one_run(learn, tmp_path):
    base, train_idx, test_idx = learn
    small = train_idx[:24]
    config = with_overrides(PRESETS["tiny"], epochs=2, batch_size=8, effective_batch=16)
    fold = TrainingFold(base / "merged.h5", small, test_idx[:8])
    train(fold, tmp_path / "once", config, CPU)
    first = tmp_path / "split"  # the same run, stopped after epoch 1, then started again
    stopped = train(fold, first, config, CPU, stop_after=1)
    assert len(stopped.history) == 1
    train(fold, first, config, CPU)
    a = torch.load(tmp_path / "once" / "checkpoint.pt", weights_only=False)
    b = torch.load(first / "checkpoint.pt", weights_only=False)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert torch.equal(a["criterion"]["centers"], b["criterion"]["centers"])
    assert a["history"][-1]["test_accuracy"] == b["history"][-1]["test_accuracy"]


def test_normalisation_uses_the_training_fold_only(learn):
    base, train_idx, test_idx = learn
    with H5Dataset(base / "merged.h5") as data:
        a = fold_statistics(data, train_idx)
        b = fold_statistics(data, test_idx)
        manual = np.stack([data[int(i)].rgb for i in train_idx]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(a.rgb_mean, manual.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(a.rgb_std, manual.std(axis=0), rtol=1e-6)
    assert a != b


def test_augmentation_is_joint_and_deterministic(learn):
    base, train_idx, _ = learn
    with H5Dataset(base / "merged.h5") as data:
        norm = fold_statistics(data, train_idx[:4])
        flip_only = AugmentConfig(
            rotation_deg=0, hflip=1.0, erase_p=0.0, brightness=0, contrast=0, saturation=0, hue=0
        )
        plain = FerTorchDataset(data, train_idx, norm, 64, None)
        flipped = FerTorchDataset(data, train_idx, norm, 64, flip_only)
        rgb, depth, label = plain[0]
        frgb, fdepth, flabel = flipped[0]
        assert label == flabel
        assert torch.equal(frgb, rgb.flip(-1)) and torch.equal(fdepth, depth.flip(-1))
        full = FerTorchDataset(data, train_idx, norm, 64, AugmentConfig(erase_p=1.0), seed=3)
        x1, d1, _ = full[1]
        x2, d2, _ = full[1]
        assert torch.equal(x1, x2) and torch.equal(d1, d2)  # same seed, epoch, sample
        full.set_epoch(1)
        assert not torch.equal(full[1][0], x1)
        # the erased box is the same in both images: where depth was erased, RGB is zero too
        raw = FerTorchDataset(
            data,
            train_idx,
            type(norm)((0, 0, 0), (1, 1, 1), 0.0, 1.0),
            64,
            AugmentConfig(erase_p=1.0, rotation_deg=0, hflip=0),
            seed=5,
        )
        rgb_raw, depth_raw, _ = raw[2]
        unerased, dunerased, _ = FerTorchDataset(
            data, train_idx, type(norm)((0, 0, 0), (1, 1, 1), 0.0, 1.0), 64, None
        )[2]
        erased = (depth_raw[0] == 0) & (dunerased[0] > 0)
        assert erased.any() and (rgb_raw[:, erased] == 0).all()


def test_cli_train_and_bad_overrides(learn, tmp_path):
    base, _, _ = learn
    items = items_from_h5(base / "merged.h5")
    manifest = sp.make_manifest(sp.load_protocol("cald3r-mend3s"), items, "test")
    sp.write_manifest(manifest, tmp_path / "m")
    path = tmp_path / "m" / "cald3r-mend3s" / "1.0.0.json"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--dataset",
            str(base / "merged.h5"),
            "--manifest",
            str(path),
            "--fold",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--ablation",
            "rgb-only",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test-fold accuracy" in result.output
    # a line per epoch, so a log shows the fold at work (its folder's last three parts)
    line = next(t for t in result.output.splitlines() if " epoch 1/1: loss " in t)
    assert line.startswith("/".join((tmp_path / "run").parts[-3:]) + " epoch 1/1: loss ")
    assert "test accuracy" in line and "(best so far" in line and line.endswith(" s")
    assert "epoch 1 (optimistic: chosen on the test fold" in result.output  # of one epoch
    with pytest.raises(Fer3dError, match="unknown configuration key"):
        with_overrides(PRESETS["tiny"], **{"model.nonsense": 1})
