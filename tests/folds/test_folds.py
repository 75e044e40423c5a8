"""The public folds API: the folds `evaluate` trains, for anyone's training code."""

import csv
from pathlib import Path

import numpy as np
import pytest

from fer3d_bench import splits as sp
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import fold_statistics
from fer3d_bench.errors import ManifestMismatch
from fer3d_bench.evaluation.plan import EvalSpec, plan
from fer3d_bench.folds import folds
from fer3d_bench.folds.datasets import torch_datasets
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.pipeline.score import score
from fer3d_bench.sources import subject_of


def test_the_folds_are_evaluates_folds_with_training_only_statistics(small, tmp_path):
    listed = folds("bu3dfe-legacy", small / "merged.h5", small / "m", repetitions=2)
    assert [(f.repetition, f.fold) for f in listed] == [(r, k) for r in range(2) for k in range(10)]
    manifest = sp.read_manifest(small / "m" / "bu3dfe-legacy" / "1.0.0.json")
    with H5Dataset(small / "merged.h5") as data:
        for fold in listed[:12]:
            train, test = manifest.fold_indices(data, fold.repetition, fold.fold)
            assert np.array_equal(fold.train, train) and np.array_equal(fold.test, test)
            assert not set(fold.train_ids) & set(fold.test_ids)
            subjects = {subject_of(i) for i in fold.train_ids}
            assert not subjects & {subject_of(i) for i in fold.test_ids}  # subject-independent
        first = listed[0]
        assert first.normalisation() == fold_statistics(data, first.train)
        assert first.normalisation() != fold_statistics(
            data, np.concatenate([first.train, first.test])
        )
    assert first.classes == tuple(manifest.content["classes"])


def test_a_dataset_that_does_not_match_the_manifest_is_refused_as_evaluate_refuses_it(
    small, tmp_path
):
    items = items_from_h5(small / "merged.h5")[1:]  # a manifest made without one sample
    manifest = sp.make_manifest(sp.load_protocol("bu3dfe-full"), items, "test")
    sp.write_manifest(manifest, tmp_path / "m")
    with pytest.raises(ManifestMismatch) as refused:
        folds("bu3dfe-full", small / "merged.h5", tmp_path / "m")
    spec = EvalSpec(small / "merged.h5", ("bu3dfe-full",), tmp_path / "run", tmp_path / "m")
    with pytest.raises(ManifestMismatch) as planned:
        plan(spec)
    assert str(refused.value) == str(planned.value)


def test_torch_datasets_give_normalised_pairs_labels_and_ids(small):
    fold = folds("bu3dfe-full", small / "merged.h5", small / "m")[0]
    train, test = torch_datasets(fold, size=32, augment=True)
    assert len(train) == len(fold.train) and len(test) == len(fold.test)
    rgb, depth, label, sample_id = test[0]
    assert rgb.shape == (3, 32, 32) and depth.shape == (1, 32, 32)
    assert sample_id == fold.test_ids[0]
    with H5Dataset(fold.dataset) as data:
        assert fold.classes[label] == data.classes[data[int(fold.test[0])].label]


def test_the_readmes_baseline_runs_at_tiny_scale(small, tmp_path, monkeypatch):
    """The README's example block, run as written but for its settings: a tiny model, two
    folds of the generated sample, then scored."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("<!-- folds-example -->\n```python\n", 1)[1].split("```", 1)[0]
    settings = 'MODEL, SIZE, EPOCHS = "resnet18", 64, 2'
    paths = 'DATASET, MANIFESTS, PROTOCOL = "demo/merged.h5", "demo/manifests", "bu3dfe-full"'
    loop = "for fold in folds(PROTOCOL, DATASET, manifests=MANIFESTS):"
    assert settings in block and paths in block and loop in block
    tiny = f"MODEL, SIZE, EPOCHS = {('test_efficientnet', 32, 1)!r}"
    ours = (str(small / "merged.h5"), str(small / "m"), "bu3dfe-full")
    here = f"DATASET, MANIFESTS, PROTOCOL = {ours!r}"
    code = block.replace(settings, tiny).replace(paths, here)
    code = code.replace(loop, "for fold in folds(PROTOCOL, DATASET, manifests=MANIFESTS)[:2]:")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    with open(tmp_path / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    listed = folds("bu3dfe-full", small / "merged.h5", small / "m")[:2]
    expected = sorted((str(f.repetition), str(f.fold), i) for f in listed for i in f.test_ids)
    assert sorted((r["repetition"], r["fold"], r["sample_id"]) for r in rows) == expected
    assert {r["predicted"] for r in rows} <= set(listed[0].classes)
    scored = score("bu3dfe-full", tmp_path / "predictions.csv", tmp_path / "scored", small / "m")
    group = scored.report.groups[0]
    assert group.aggregate.folds_ok == 2 and "2 of 5 folds" in group.title
