"""The epoch of best test accuracy: the first to reach the maximum, its predictions kept through a
kill and a resume, written to result.json as `best_test` (for `--epoch-selection best-test`)."""

import json
import shutil

import pytest
import torch
from runs import small_spec

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.evaluation.local import run_local
from fer3d_bench.evaluation.plan import plan as make_plan
from fer3d_bench.records.io import RecordDamaged
from fer3d_bench.records.result import read_result
from fer3d_bench.train import loop
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.loop import train

CPU = Placement("cpu")
CONFIG = with_overrides(PRESETS["tiny"], epochs=4, batch_size=8, effective_batch=8)
REAL_PREDICT = loop.predict


@pytest.fixture(scope="module")
def fold(small):
    return TrainingFold(small / "merged.h5", list(range(16)), list(range(16, 24)))


def scripted(monkeypatch, correct: list[int]) -> None:
    """The test pass of epoch k (0-based) gets `correct[k]` of its samples right, the first
    ones by id, the others wrong: a run whose accuracies, and so its best epoch, are known."""

    def predict(dataset, fit):
        _, _, embeddings = REAL_PREDICT(dataset, fit)
        right = correct[min(fit.epoch, len(correct) - 1)]
        labels = {
            fit.data.sample_ids[int(i)]: int(fit.data.labels[int(i)]) for i in dataset.indices
        }
        predictions = {}
        for k, sample in enumerate(sorted(labels)):
            wrong = next(c for c in fit.outputs if c != labels[sample])
            predictions[sample] = labels[sample] if k < right else wrong
        return right / len(labels), predictions, embeddings

    monkeypatch.setattr(loop, "predict", predict)


def test_the_first_epoch_of_the_best_accuracy_is_kept_ties_to_the_earlier(
    fold, tmp_path, monkeypatch
):
    scripted(monkeypatch, [2, 6, 6, 5])  # of 8: epochs 2 and 3 tie at the best
    result = train(fold, tmp_path / "fold", CONFIG, CPU)
    assert [e["test_accuracy"] for e in result.history] == [0.25, 0.75, 0.75, 0.625]
    assert (result.best_test.epoch, result.best_test.accuracy) == (2, 0.75)
    best = result.best_test.predictions
    assert sum(best[s] == k for s, k in result.predictions.items()) == 7  # sample 6 differs
    assert result.test_accuracy == 0.625  # the last epoch's, still what `predictions` holds


def test_a_killed_and_resumed_fold_keeps_the_best_epoch_of_before_the_kill(
    fold, tmp_path, monkeypatch
):
    scripted(monkeypatch, [3, 7, 4, 7])  # the best comes before the kill; the tie after it
    once = train(fold, tmp_path / "once", CONFIG, CPU)
    stopped = train(fold, tmp_path / "split", CONFIG, CPU, stop_after=2)
    assert stopped.best_test.epoch == 2
    resumed = train(fold, tmp_path / "split", CONFIG, CPU)
    assert [e["epoch"] for e in resumed.history] == [1, 2, 3, 4]
    assert resumed.best_test == once.best_test
    assert (resumed.best_test.epoch, resumed.best_test.accuracy) == (2, 0.875)
    again = train(fold, tmp_path / "split", CONFIG, CPU)  # resumed after its last epoch
    assert again.best_test == once.best_test


def test_real_training_killed_and_resumed_ends_with_the_same_best_test(fold, tmp_path):
    once = train(fold, tmp_path / "once", CONFIG, CPU)
    train(fold, tmp_path / "split", CONFIG, CPU, stop_after=1)
    train(fold, tmp_path / "split", CONFIG, CPU, stop_after=3)
    resumed = train(fold, tmp_path / "split", CONFIG, CPU)
    scores = [e["test_accuracy"] for e in once.history]
    assert once.best_test.accuracy == max(scores)
    assert once.best_test.epoch == scores.index(max(scores)) + 1
    assert resumed.best_test == once.best_test
    saved = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert saved["best_test"]["epoch"] == once.best_test.epoch


def test_result_json_holds_the_best_test_epoch_and_its_predictions(small, tmp_path):
    spec = small_spec(small, tmp_path / "run", overrides={"epochs": 3}, max_folds=1)
    jobs = make_plan(spec).jobs
    assert [s.status for s in run_local(jobs, progress=False)] == ["ok"]
    raw = json.loads(jobs[0].result_path.read_text())
    best, history = raw["best_test"], raw["history"]
    scores = [e["test_accuracy"] for e in history]
    assert best["accuracy"] == max(scores)
    assert best["epoch"] == scores.index(max(scores)) + 1
    predictions = best["predictions"]
    assert sorted(predictions) == sorted(raw["predictions"])
    hits = sum(p["true"] == p["pred"] for p in predictions.values())
    assert hits / len(predictions) == pytest.approx(best["accuracy"])
    assert all(p["true"] == raw["predictions"][s]["true"] for s, p in predictions.items())
    assert {p["pred"] for p in predictions.values()} <= set(raw["classes"])
    if best["epoch"] == len(history):  # the last epoch is the best: the same predictions
        assert predictions == raw["predictions"]
    result = read_result(jobs[0].result_path)
    assert result.selected("best-test") == predictions
    assert result.selected("last") == raw["predictions"]


@pytest.fixture(scope="module")
def stopped(fold, tmp_path_factory):
    """A fold folder after two of its four epochs."""
    out = tmp_path_factory.mktemp("best") / "fold"
    train(fold, out, CONFIG, CPU, stop_after=2)
    return out


def _first(saved: dict) -> str:
    return next(iter(saved["best_test"]["predictions"]))


# each: how the best-test record is changed, and what the one-line message says of it
DAMAGE = {
    "missing (before 0.16)": (
        lambda s: s.pop("best_test"),
        "does not fit this run .it holds no best-test epoch",
    ),
    "none after two epochs": (
        lambda s: s.update(best_test=None),
        "'best_test' is missing for its epochs",
    ),
    "text": (lambda s: s.update(best_test="epoch 2"), "'best_test' is not a table of epoch"),
    "an extra key": (
        lambda s: s["best_test"].update(note=1),
        "'best_test' is not a table of epoch, accuracy and predictions",
    ),
    "an epoch beyond the history": (
        lambda s: s["best_test"].update(epoch=9),
        "'best_test' epoch 9 is not one of its 2 epochs",
    ),
    "an epoch of a bool": (
        lambda s: s["best_test"].update(epoch=True),
        "'best_test' epoch True is not one of",
    ),
    "predictions of a list": (
        lambda s: s["best_test"].update(predictions=[1, 2]),
        "'best_test' predictions are not a table of samples",
    ),
    "a prediction of a word": (
        lambda s: s["best_test"]["predictions"].update({_first(s): "happy"}),
        "'best_test' predictions are not sample ids with class indices",
    ),
    "a negative class": (
        lambda s: s["best_test"]["predictions"].update({_first(s): -1}),
        "'best_test' predictions are not sample ids with class indices",
    ),
    "an accuracy not the history's": (
        lambda s: s["best_test"].update(accuracy=1.5),
        "is not the first epoch of its history's best test accuracy",
    ),
    "a sample of another fold": (
        lambda s: s["best_test"]["predictions"].update({"bu3dfe:F0999_AN01WH": 0}),
        "does not fit this run .its best-test predictions name 9 samples, not exactly this "
        "fold's 8 test samples",
    ),
    "a class the classifier lacks": (
        lambda s: s["best_test"]["predictions"].update({_first(s): 10**6}),
        "best-test predictions hold classes this classifier does not have",
    ),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_a_malformed_best_test_record_is_refused_in_one_line(fold, stopped, tmp_path, name):
    out = shutil.copytree(stopped, tmp_path / "fold")
    change, problem = DAMAGE[name]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    change(saved)
    torch.save(saved, out / "checkpoint.pt")
    with pytest.raises(RecordDamaged, match=problem) as error:
        train(fold, out, CONFIG, CPU)
    assert str(error.value).startswith(f"{out / 'checkpoint.pt'}: ")
    assert "\n" not in str(error.value)


def test_predictions_that_do_not_score_the_recorded_accuracy_are_refused(fold, stopped, tmp_path):
    out = shutil.copytree(stopped, tmp_path / "fold")
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    best = saved["best_test"]
    with H5Dataset(fold.dataset) as data:
        truth = {s: int(data.labels[data.index_of(s)]) for s in best["predictions"]}
    # all right, or all wrong where all right is what was recorded: another accuracy
    everything = best["accuracy"] < 1
    best["predictions"] = {s: k if everything else (k + 1) % 7 for s, k in truth.items()}
    torch.save(saved, out / "checkpoint.pt")
    with pytest.raises(RecordDamaged, match="its best-test predictions score") as error:
        train(fold, out, CONFIG, CPU)
    assert "\n" not in str(error.value)
