"""The search: one Optuna study, shared by any number of `tune` workers, over nested folds.

A trial draws its params (`space`, `sampler`), trains the model with them on each inner
training part of the fold's training subjects (`nested`) with `train.loop.train`, and is worth
the mean over inner folds of the last epoch's validation accuracy. Its training folders are
`<work>/trial-<number>/inner-<k>/`; a trial queued again after its worker was killed trains in
the folders of the trial it repeats (`storage`), so it resumes from their checkpoints.

Workers are separate `tune` processes given one storage and study name; each stops when the
study holds `trials` COMPLETE trials (Optuna's MaxTrialsCallback). Two workers finishing at
once would each start one more, so before drawing anything a trial counts the trials numbered
below it that are COMPLETE, RUNNING or WAITING: when they are `trials` already it is not run (it
ends PRUNED, with user attribute `surplus`) and its worker stops. No more than `trials` ever
complete (the last one would have counted as many below it); fewer only if a counted trial
fails, and then its own worker goes on. A diverging trial fails (user attribute `diverged`)
and another is drawn, until as many have diverged as trials were asked for.

The first worker records what the study searches (dataset, manifest, fold, inner folds, seed,
preset, epochs, space, weights) as a user attribute of the study; a worker started with
anything else is refused, so that a study never mixes two searches. Each worker that finds the
study finished writes the best trial to `--out` (every one writes the same file).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.study import MaxTrialsCallback, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from fer3d_bench import __version__
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.io import inside, output_folder
from fer3d_bench.processes import HOST
from fer3d_bench.splits import MANIFESTS_DIR, Protocol
from fer3d_bench.train import loop
from fer3d_bench.train.config import FULL, TrainConfig, protocol_train, variant_configs
from fer3d_bench.train.device import resolve
from fer3d_bench.train.environment import TrainingEnvironment
from fer3d_bench.train.fold import TrainingFold, training_fold
from fer3d_bench.tune import TuneError
from fer3d_bench.tune.nested import NestedSplit, nested_split
from fer3d_bench.tune.output import best_trial, config_document, study_sha256, write_config
from fer3d_bench.tune.sampler import TrialSeededSampler
from fer3d_bench.tune.space import space_record, suggest
from fer3d_bench.tune.storage import (
    JOURNAL_KIND,
    Heartbeat,
    fail_stale_journal_trials,
    journal_heartbeat,
    open_storage,
    storage_kind,
)
from fer3d_bench.weights.known import file_hashes

Echo = Callable[[str], None]
SETUP = "fer3d_tune_setup"  # the study's user attribute: what it searches
# trials' user attributes: who ran it, its inner folds' accuracies, not run, why it failed
WORKER, INNER, SURPLUS, DIVERGED = "worker", "inner_accuracy", "surplus", "diverged"
RETRIED = "failed_trial"  # what RetryHeartbeatStaleTrialCallback records: the trial repeated
ACTIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
CATCH = (FloatingPointError,)  # a diverging trial fails; the search goes on
HEADER = (
    "Written by `fer3d-bench tune`: the best trial's hyperparameters, for\n"
    "`fer3d-bench evaluate --config FILE`; [tuned] says what they were tuned on."
)


@dataclass
class TuneSpec:
    """What one `fer3d-bench tune` call asks for."""

    dataset: Path
    protocol: str
    out: Path
    storage: str
    trials: int
    manifests: Path = MANIFESTS_DIR
    study: str | None = None  # default: <protocol>-<preset>-r<repetition>-f<fold>
    preset: str = "paper"
    epochs: int | None = None
    repetition: int = 0
    fold: int = 0
    inner_folds: int = 3
    seed: int = 0
    work: Path | None = None  # default: <out stem>-trials/ beside --out
    environment: TrainingEnvironment = field(default_factory=TrainingEnvironment)
    heartbeat: Heartbeat = field(default_factory=Heartbeat)

    @property
    def study_name(self) -> str:
        default = f"{self.protocol}-{self.preset}-r{self.repetition}-f{self.fold}"
        return self.study or default

    @property
    def work_dir(self) -> Path:
        out = Path(self.out)
        return Path(self.work) if self.work else out.parent / f"{out.stem}-trials"


@dataclass
class TuneOutcome:
    study: str
    complete: int  # COMPLETE trials in the study
    running: int  # RUNNING or WAITING trials: other workers', or lost ones not yet noticed
    best: FrozenTrial | None
    out: Path | None  # None until the study holds `trials` COMPLETE trials


def tune(spec: TuneSpec, echo: Echo = print) -> TuneOutcome:
    """Run trials until the study holds `spec.trials` COMPLETE ones, then write the best."""
    _check(spec)
    split = nested_split(
        spec.dataset,
        spec.protocol,
        spec.manifests,
        spec.repetition,
        spec.fold,
        spec.inner_folds,
        spec.seed,
    )
    base = {} if spec.epochs is None else {"epochs": spec.epochs}
    config = trial_config(spec.preset, base, split.protocol)
    setup = setup_record(spec, split, config)
    study = open_study(spec, setup)
    work = output_folder(spec.work_dir)
    if storage_kind(spec.storage) == JOURNAL_KIND:
        fail_stale_journal_trials(study, spec.heartbeat)
    if _count(study, (TrialState.COMPLETE,)) < spec.trials:
        objective = _Objective(spec, split, base, work)
        callbacks = [
            MaxTrialsCallback(spec.trials, states=(TrialState.COMPLETE,)),
            _stop_when_diverged(spec.trials),
            _echo_trial(spec, echo),
        ]
        study.optimize(objective, catch=CATCH, callbacks=callbacks)
    return finish(study, spec, split, setup, echo)


def _check(spec: TuneSpec) -> None:
    if spec.trials < 1:
        raise TuneError(f"--trials {spec.trials}: at least one trial is needed")
    if spec.epochs is not None and spec.epochs < 1:
        raise TuneError(f"--epochs {spec.epochs}: a trial trains at least one epoch")
    if not Path(spec.out).parent.is_dir():
        raise TuneError(f"{spec.out}: output folder {Path(spec.out).parent} does not exist")


def trial_config(preset: str, overrides: dict, protocol: Protocol) -> TrainConfig:
    """The config a trial trains, composed as `evaluate --config` composes the best one."""
    return variant_configs(preset, overrides, (), protocol_train(protocol))[FULL]


def setup_record(spec: TuneSpec, split: NestedSplit, config: TrainConfig) -> dict:
    """What every worker of one study must agree on, as plain JSON values."""
    weights = spec.environment.weights.path
    record = {
        "dataset_fingerprint": split.fingerprint,
        "protocol": split.protocol.name,
        "protocol_version": split.protocol.version,
        "manifest_sha256": split.manifest.sha256,
        "repetition": spec.repetition,
        "fold": spec.fold,
        "inner_folds": spec.inner_folds,
        "seed": spec.seed,
        "preset": spec.preset,
        "epochs": config.epochs,
        "space": space_record(spec.preset),
        "backbone_weights_sha256": file_hashes(weights).sha256 if weights else None,
        "exclude_flagged": spec.environment.exclude_flagged,
    }
    return json.loads(json.dumps(record))


def open_study(spec: TuneSpec, setup: dict) -> optuna.Study:
    """The study, created if new (direction maximize), refused if it searches something else."""
    # each trial is echoed by this module, a diverged one in a line (Optuna: its traceback)
    optuna.logging.set_verbosity(logging.ERROR)
    storage = open_storage(spec.storage, spec.heartbeat)
    where = f"study {spec.study_name!r} in {spec.storage}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        study = optuna.create_study(
            storage=storage,
            study_name=spec.study_name,
            direction="maximize",
            sampler=TrialSeededSampler(spec.seed),
            load_if_exists=True,
        )
    if study.directions != [StudyDirection.MAXIMIZE]:
        raise TuneError(f"{where}: not a study of `fer3d-bench tune` (it does not maximize)")
    if SETUP not in study.user_attrs:
        study.set_user_attr(SETUP, setup)
    recorded = study.user_attrs[SETUP]
    if not isinstance(recorded, dict):
        raise TuneError(f"{where}: not a study of `fer3d-bench tune` (its {SETUP} is not a record)")
    differ = sorted(k for k in {*recorded, *setup} if recorded.get(k) != setup.get(k))
    if differ:
        text = "; ".join(f"{k}: {recorded.get(k)!r}, not {setup.get(k)!r}" for k in differ[:4])
        raise TuneError(
            f"{where} searches something else ({text}); give this search another --study"
        )
    return study


class _Objective:
    """One trial: the surplus check, the draw, one training per inner fold."""

    def __init__(self, spec: TuneSpec, split: NestedSplit, base: dict, work: Path):
        self.spec, self.split, self.base, self.work = spec, split, base, work
        self.placement = resolve(replace(spec.environment.placement, progress=False))
        self.folds = inner_training_folds(spec, split)  # the same for every trial
        self.journal = storage_kind(spec.storage) == JOURNAL_KIND

    def __call__(self, trial: optuna.Trial) -> float:
        if self.journal:  # RDB storages fail stale trials themselves, before each trial
            fail_stale_journal_trials(trial.study, self.spec.heartbeat)
        if surplus(trial, self.spec.trials):
            trial.set_user_attr(SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned(f"{self.spec.trials} trials are complete or running")
        trial.set_user_attr(WORKER, f"{HOST}:{os.getpid()}")
        params = suggest(trial, self.spec.preset)
        config = trial_config(self.spec.preset, self.base | params, self.split.protocol)
        folder = self.work / f"trial-{repeated_number(trial):04d}"
        beating = journal_heartbeat(trial, self.spec.heartbeat) if self.journal else None
        with beating or contextlib.nullcontext():
            try:
                scores = [
                    self._train(config, inside(self.work, folder / f"inner-{k}"), fold)
                    for k, fold in enumerate(self.folds)
                ]
            except CATCH as exc:
                trial.set_user_attr(DIVERGED, str(exc))
                raise
        trial.set_user_attr(INNER, scores)
        return statistics.fmean(scores)

    def _train(self, config: TrainConfig, folder: Path, fold: TrainingFold) -> float:
        result = loop.train(fold, folder, config, self.placement, self.spec.environment.weights)
        return result.test_accuracy  # the validation part's, after the last epoch


def inner_training_folds(spec: TuneSpec, split: NestedSplit) -> list[TrainingFold]:
    """Each inner split as the trainer takes it, flagged training samples left out if asked."""
    with H5Dataset(spec.dataset) as data:
        return [
            training_fold(
                data,
                inner.train,
                inner.validation,
                split.manifest.classes,
                spec.environment.exclude_flagged,
            )
            for inner in split.inner
        ]


def surplus(trial: optuna.Trial, trials: int) -> bool:
    """Whether `trials` trials numbered below this one are complete, running or queued."""
    below = trial.study.get_trials(deepcopy=False, states=ACTIVE)
    return sum(1 for t in below if t.number < trial.number) >= trials


def repeated_number(trial: optuna.Trial) -> int:
    """The number of the trial this one repeats (queued again after its worker was killed),
    else its own: the number its training folders are named after."""
    frozen = trial.study.get_trials(deepcopy=False)[trial.number]
    return int(frozen.system_attrs.get(RETRIED, trial.number))


def _count(study: optuna.Study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _diverged(study: optuna.Study) -> int:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return sum(1 for t in failed if DIVERGED in t.user_attrs)


def _stop_when_diverged(trials: int):
    """Stop once as many trials diverged as were asked for: the space does not fit the data.
    (Trials lost with a killed worker fail too, and are retried; they are not counted.)"""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if _diverged(study) >= trials:
            study.stop()

    return callback


def _echo_trial(spec: TuneSpec, echo: Echo):
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        done = _count(study, (TrialState.COMPLETE,))
        if trial.state == TrialState.COMPLETE:
            params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(trial.params.items()))
            echo(
                f"trial {trial.number}: validation accuracy {trial.value:.4f} "
                f"({done} of {spec.trials} complete): {params}"
            )
        elif trial.state == TrialState.FAIL:
            echo(f"trial {trial.number} diverged ({trial.user_attrs.get(DIVERGED)})")

    return callback


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def finish(
    study: optuna.Study, spec: TuneSpec, split: NestedSplit, setup: dict, echo: Echo
) -> TuneOutcome:
    """Write the best trial when the study is finished; otherwise say what it waits for."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    running = sum(1 for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING))
    where = f"study {spec.study_name!r} in {spec.storage}"
    if len(complete) >= spec.trials:
        best = best_trial(complete)
        document = best_document(study, spec, split, setup, best, complete)
        out = write_config(spec.out, document, header=HEADER)
        echo(
            f"{where}: best of {len(complete)} trials is trial {best.number} (validation "
            f"accuracy {best.value:.4f}); written to {out}"
        )
        return TuneOutcome(spec.study_name, len(complete), running, best, out)
    if running:
        echo(
            f"{where}: {len(complete)} of {spec.trials} trials complete, {running} running or "
            f"queued; the worker that completes the last writes {spec.out}. A killed worker's "
            f"trial is retried by the next trial any worker starts {spec.heartbeat.grace} s or "
            "more after its last heartbeat: run tune again then"
        )
        return TuneOutcome(spec.study_name, len(complete), running, None, None)
    raise TuneError(
        f"{where}: only {len(complete)} of {spec.trials} trials complete and "
        f"{_diverged(study)} diverged; narrow the search space or lower the learning rates"
    )


def best_document(
    study: optuna.Study,
    spec: TuneSpec,
    split: NestedSplit,
    setup: dict,
    best: FrozenTrial,
    complete: list[FrozenTrial],
) -> dict:
    """The config file's content: preset, the best trial's params, and the `[tuned]` table."""
    tuned = {
        "study": study.study_name,
        "study_sha256": study_sha256(complete),
        "trials": len(complete),
        "trial": best.number,
        "value": float(best.value),
        "protocol": split.protocol.name,
        "protocol_version": split.protocol.version,
        "manifest_sha256": split.manifest.sha256,
        "repetition": split.repetition,
        "fold": split.fold,
        "inner_folds": len(split.inner),
        "storage_kind": storage_kind(spec.storage),
        "seed": spec.seed,
        "epochs": setup["epochs"],
        "fer3d_bench_version": __version__,
    }
    return config_document(spec.preset, dict(best.params), tuned)
