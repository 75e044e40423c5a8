"""tune: the best trial as a config evaluate runs, a killed worker's trial retried, shared
studies, studies of another search refused."""

import json
import math
import signal
import time
from pathlib import Path
from unittest import mock

import optuna
from click.testing import CliRunner
from optuna.trial import TrialState
from tuning import PROTOCOL, load_study, start_worker, tune_args

from fer3d_bench.cli import main
from fer3d_bench.records.io import read_jsonl
from fer3d_bench.train import loop
from fer3d_bench.train.config import load_config_file
from fer3d_bench.train.losses import FerLoss
from fer3d_bench.tune.output import best_trial, study_sha256
from fer3d_bench.tune.sampler import TrialSeededSampler
from fer3d_bench.tune.storage import BEAT
from fer3d_bench.tune.study import DIVERGED, INNER, RETRIED, SURPLUS, WORKER

TRIALS = 3


def _complete(study):
    return study.get_trials(states=(TrialState.COMPLETE,))


def test_tune_writes_the_best_trial_as_a_config_that_evaluate_runs(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = tune_args(data, tmp_path, storage, TRIALS)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    study = load_study(storage)
    complete = _complete(study)
    assert [t.number for t in complete] == list(range(TRIALS))
    assert all(len(t.user_attrs[INNER]) == 2 for t in complete)
    best = best_trial(complete)
    assert best.value == max(t.value for t in complete)
    loaded = load_config_file(tmp_path / "best.toml")
    assert loaded.preset == "tiny" and loaded.overrides == best.params
    tuned = loaded.source["tuned"]
    assert tuned["study"] == f"{PROTOCOL}-tiny-r0-f0" and tuned["trial"] == best.number
    assert tuned["study_sha256"] == study_sha256(complete) and tuned["trials"] == TRIALS
    assert (tuned["storage_kind"], tuned["epochs"], tuned["inner_folds"]) == ("rdb", 1, 2)
    assert tuned["value"] == best.value and tuned["fold"] == 0
    # the draws are the sampler's for seed 0 alone: a fresh study draws the same
    assert [t.params for t in complete] == _fresh_draws(0, study)

    written = (tmp_path / "best.toml").read_bytes()
    again = CliRunner().invoke(main, args)  # finished: nothing trains, the same file
    assert again.exit_code == 0, again.output
    assert len(load_study(storage).trials) == TRIALS
    assert (tmp_path / "best.toml").read_bytes() == written

    run = tmp_path / "run"
    evaluate = ["evaluate", "--dataset", str(data / "merged.h5"), "--protocol", PROTOCOL]
    evaluate += ["--manifests", str(data / "m"), "--config", str(tmp_path / "best.toml")]
    evaluate += ["--preset", "tiny", "--epochs", "1", "--repetitions", "1", "--max-folds", "1"]
    evaluate += ["--out", str(run), "--device", "cpu"]
    result = CliRunner().invoke(main, evaluate)
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())
    assert info["config_file"]["tuned"]["study"] == tuned["study"]
    assert (
        info["variants"]["full"]["model"]["attention_modules"]
        == (best.params["model.attention_modules"])
    )
    assert "Hyperparameters from Optuna study" in (run / "report.md").read_text()
    # and through `reproduce`: Table IV with the tuned configuration
    paper = tmp_path / "table-iv"
    reproduce = ["reproduce", "table-iv", *evaluate[1:3], *evaluate[5:-4], "--out", str(paper)]
    result = CliRunner().invoke(main, reproduce)
    assert result.exit_code == 0, result.output
    info = json.loads((paper / "run.json").read_text())
    assert info["experiment"]["name"] == "table-iv"
    assert info["config_file"]["tuned"]["study_sha256"] == tuned["study_sha256"]
    assert "Hyperparameters from Optuna study" in (paper / "report.md").read_text()

    other = CliRunner().invoke(main, [*args, "--seed", "1"])  # same study, another search
    assert other.exit_code == 1
    assert "searches something else (seed: 0, not 1)" in other.output


def _fresh_draws(seed, like):
    """What a new in-memory study of this seed draws for the trials of `like`, in order."""
    fresh = optuna.create_study(direction="maximize", sampler=TrialSeededSampler(seed))
    return [fresh.ask(fixed_distributions=t.distributions).params for t in like.trials]


def _kill_during_a_trial(worker, storage, work, trials):
    """SIGKILL `worker` while a trial runs after the first completed; that trial's number.

    The worker is stopped (SIGSTOP) before the storage is read again, so what is read is what
    the kill leaves; if the trial finished in between, the worker goes on and is caught later.
    """
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker finished before it could be killed"
        running = _running_after_one(storage, work, trials)
        if running is not None:
            worker.send_signal(signal.SIGSTOP)
            if _running_after_one(storage, work, trials) == running:
                worker.kill()
                worker.wait()
                return running
            worker.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no trial ran after the first had completed")


def _running_after_one(storage, work, trials):
    try:
        study = load_study(storage)
    except KeyError:  # not created yet
        return None
    done = len(_complete(study))
    running = study.get_trials(states=(TrialState.RUNNING,))
    if not 1 <= done < trials or not running:
        return None
    number = running[0].number
    return number if (work / f"trial-{number:04d}").is_dir() else None  # training started


def test_a_killed_workers_trial_is_failed_and_retried_on_resume(data, tmp_path):
    # more trials than elsewhere: the kill must land while one runs after the first completed,
    # and a quiet machine once finished three before the poller saw one running
    trials = 2 * TRIALS
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = tune_args(data, tmp_path, storage, trials)
    work = tmp_path / "best-trials"
    killed = _kill_during_a_trial(start_worker(args, tmp_path / "1.log"), storage, work, trials)
    assert load_study(storage).trials[killed].state == TrialState.RUNNING
    time.sleep(3.5)  # longer than the grace period (2 s) since its last heartbeat
    resumed = CliRunner().invoke(main, args)  # started again (here: quicker than a process)
    assert resumed.exit_code == 0, resumed.output
    _assert_retried(load_study(storage), killed, work, trials)
    assert load_config_file(tmp_path / "best.toml").source["tuned"]["storage_kind"] == "rdb"


def test_a_journal_trial_whose_heartbeat_stopped_is_failed_and_retried(data, tmp_path):
    """What a killed worker leaves in a journal: a RUNNING trial, its params drawn, whose
    heartbeat stopped. The next worker fails it and queues its params again."""
    storage = f"journal:{tmp_path / 'study.log'}"
    result = CliRunner().invoke(main, tune_args(data, tmp_path, storage, 1))
    assert result.exit_code == 0, result.output
    study = load_study(storage)
    lost = study.ask(fixed_distributions=study.trials[0].distributions)
    lost.set_user_attr(WORKER, "elsewhere:1")
    lost.set_user_attr(BEAT, time.time())
    assert lost.params and load_study(storage).trials[1].state == TrialState.RUNNING
    time.sleep(2.5)  # longer than the grace period
    result = CliRunner().invoke(main, tune_args(data, tmp_path, storage, TRIALS))
    assert result.exit_code == 0, result.output
    study = load_study(storage)
    _assert_retried(study, lost.number, tmp_path / "best-trials")
    assert all(BEAT in t.user_attrs for t in _complete(study))
    assert load_config_file(tmp_path / "best.toml").source["tuned"]["storage_kind"] == "journal"


def _assert_retried(study, lost, work, trials=TRIALS):
    """`lost` FAILED, its params trained again by one later COMPLETE trial in its folders."""
    assert len(_complete(study)) == trials
    assert study.trials[lost].state == TrialState.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get(RETRIED) == lost]
    assert retry.state == TrialState.COMPLETE and retry.params == study.trials[lost].params
    assert retry.number > lost
    assert not (work / f"trial-{retry.number:04d}").exists()
    for k in range(2):  # one epoch logged in each: resumed where the lost trial was, if begun
        assert len(read_jsonl(work / f"trial-{lost:04d}" / f"inner-{k}" / "metrics.jsonl")) == 1


def test_two_workers_share_one_study_and_complete_exactly_the_trials_asked(data, tmp_path):
    trials = 4
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = tune_args(data, tmp_path, storage, trials)
    workers = [start_worker(args, tmp_path / f"{k}.log") for k in range(2)]
    for k, worker in enumerate(workers):
        assert worker.wait(timeout=300) == 0, (tmp_path / f"{k}.log").read_text()
    study = load_study(storage)
    complete = _complete(study)
    assert len(complete) == trials
    others = [t for t in study.trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.PRUNED and t.user_attrs[SURPLUS] for t in others)
    drawn = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(drawn)) == trials
    # each trial trained once, by one worker, in its own folders; a surplus trial not at all
    work = tmp_path / "best-trials"
    assert sorted(p.name for p in work.iterdir()) == [f"trial-{t.number:04d}" for t in complete]
    for trial in complete:
        assert trial.user_attrs[WORKER]
        for k in range(2):
            folder = work / f"trial-{trial.number:04d}" / f"inner-{k}"
            assert len(read_jsonl(folder / "metrics.jsonl")) == 1
    tuned = load_config_file(tmp_path / "best.toml").source["tuned"]
    assert tuned["trials"] == trials and tuned["study_sha256"] == study_sha256(complete)


def test_a_diverging_trial_fails_and_another_is_drawn_until_too_many_diverge(
    data, tmp_path, monkeypatch
):
    real, forward = loop.train, FerLoss.forward

    def nan_loss(self, *args):
        total, parts = forward(self, *args)
        return total * math.nan, parts

    def diverging(fold, out, config, *args, **kwargs):
        if not diverge(Path(out).parent.name):
            return real(fold, out, config, *args, **kwargs)
        with mock.patch.object(FerLoss, "forward", nan_loss):  # the trainer's own check fires
            return real(fold, out, config, *args, **kwargs)

    monkeypatch.setattr(loop, "train", diverging)
    diverge = "trial-0001".__eq__
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = CliRunner().invoke(main, tune_args(data, tmp_path, storage, TRIALS))
    assert result.exit_code == 0, result.output
    assert "trial 1 diverged (loss became" in result.output and "Traceback" not in result.output
    study = load_study(storage)
    assert [t.number for t in _complete(study)] == [0, 2, 3]
    assert DIVERGED in study.trials[1].user_attrs and study.trials[1].state == TrialState.FAIL

    diverge = lambda name: True  # noqa: E731 - every trial of a new study diverges
    storage = f"sqlite:///{tmp_path / 'other.db'}"
    (tmp_path / "x").mkdir()
    result = CliRunner().invoke(main, tune_args(data, tmp_path / "x", storage, 2))
    assert result.exit_code == 1
    assert "only 0 of 2 trials complete and 2 diverged" in result.output
    assert len(load_study(storage).trials) == 2
