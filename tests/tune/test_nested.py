"""The inner folds: only a fold's training subjects, dealt by name, never a test-fold sample."""

import random

import pytest
from click.testing import CliRunner
from tuning import PROTOCOL, TEST_SUBJECT, tune_args

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.manifests import bu3dfe_catalogue
from fer3d_bench.train import loop
from fer3d_bench.tune import TuneError
from fer3d_bench.tune.nested import inner_assignment, nested_split

REAL_TRAIN = loop.train


def _fold_items(manifest, protocol, repetition, fold):
    """(training items, test subjects) of one fold of a manifest made from the catalogue."""
    groups = manifest.content["repetitions"][repetition]["subjects"]
    test = set(groups[fold])
    chosen = sp.select(protocol, bu3dfe_catalogue())
    return [i for i in chosen if i.subject not in test], test


def test_inner_folds_deal_only_training_subjects_by_name_alone():
    protocol = sp.load_protocol(PROTOCOL)  # 60 subjects, 10 folds, balanced by sex
    manifest = sp.make_manifest(protocol, bu3dfe_catalogue(), "catalogue")
    for repetition in range(3):
        for fold in range(protocol.folds):
            items, test = _fold_items(manifest, protocol, repetition, fold)
            folds = inner_assignment(protocol, items, 3, seed=0)
            assert set(folds) == {i.subject for i in items} and not set(folds) & test
            sizes = [list(folds.values()).count(k) for k in range(3)]
            assert max(sizes) - min(sizes) <= 1, sizes
            for sex in "FM":  # dealt stratum by stratum, as the outer folds are
                per = [sum(1 for s, k in folds.items() if k == j and s[7] == sex) for j in range(3)]
                assert max(per) - min(per) <= 1, (sex, per)
            shuffled = random.Random(fold).sample(items, len(items))
            assert inner_assignment(protocol, shuffled, 3, seed=0) == folds
    other = inner_assignment(protocol, items, 3, seed=1)
    assert other.keys() == folds.keys() and other != folds


def test_fold_zero_is_what_the_tests_assume(data):
    split = nested_split(data / "merged.h5", PROTOCOL, data / "m", 0, 0, 2, 0)
    assert split.test_subjects == (TEST_SUBJECT,)
    assert sorted(s for inner in split.inner for s in inner.validation_subjects) == [
        "bu3dfe:F0002",
        "bu3dfe:M0001",
    ]
    with H5Dataset(data / "merged.h5") as h5:
        train, test = split.manifest.fold_indices(h5, 0, 0)
    for inner in split.inner:  # each inner split is the whole training part, in two
        assert not set(inner.train.tolist()) & set(inner.validation.tolist())
        assert sorted(inner.train.tolist() + inner.validation.tolist()) == train.tolist()
        assert not set(inner.train.tolist() + inner.validation.tolist()) & set(test.tolist())


def test_too_few_training_subjects_for_the_inner_folds_is_refused(data):
    with pytest.raises(TuneError, match="trains on 2 subjects, fewer than --inner-folds 3"):
        nested_split(data / "merged.h5", PROTOCOL, data / "m", 0, 0, 3, 0)


@pytest.mark.parametrize("repetition, fold", [(0, 0), (1, 2)])
def test_no_test_fold_sample_reaches_a_trial(data, tmp_path, monkeypatch, repetition, fold):
    """Every index any trial trains or validates on, as `train` receives it, for two folds."""
    seen = []

    def recording(fold, out, config, *args, **kwargs):
        seen.append((fold.train.tolist(), fold.test.tolist()))
        return REAL_TRAIN(fold, out, config, *args, **kwargs)

    monkeypatch.setattr(loop, "train", recording)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    more = ["--repetition", str(repetition), "--fold", str(fold)]
    result = CliRunner().invoke(main, tune_args(data, tmp_path, storage, 1, *more))
    assert result.exit_code == 0, result.output
    manifest = sp.read_manifest(data / "m" / PROTOCOL / "1.0.0.json")
    test_subjects = set(manifest.content["repetitions"][repetition]["subjects"][fold])
    with H5Dataset(data / "merged.h5") as h5:
        _, test = manifest.fold_indices(h5, repetition, fold)
        subjects = h5.subjects
        test_ids = {h5.sample_ids[i] for i in test}
        assert len(seen) == 2 and test_ids  # one trial, two inner folds
        for train_idx, validation_idx in seen:
            used = {h5.sample_ids[i] for i in train_idx + validation_idx}
            assert not used & test_ids
            assert not {str(subjects[i]) for i in train_idx + validation_idx} & test_subjects
