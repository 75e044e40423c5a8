"""How the tests ask for an evaluation run on the small world (`worlds.SMALL`): one spec
builder and the training environments they train with, written once."""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.evaluation.plan import EvalSpec
from fer3d_bench.train.environment import Placement, TrainingEnvironment
from fer3d_bench.weights.request import PretrainedWeights

CPU = TrainingEnvironment(placement=Placement("cpu"))


def pretrained(weights: Path) -> TrainingEnvironment:
    """On the CPU, from the backbone weights file `weights`."""
    return TrainingEnvironment(PretrainedWeights(weights), Placement("cpu"))


def small_spec(small: Path, out: Path, **changes) -> EvalSpec:
    """bu3dfe-legacy's first repetition, two folds, the tiny preset for one epoch, on the CPU,
    from the small world's merged file and manifests; `changes` replace any of these."""
    values = dict(
        dataset=small / "merged.h5",
        protocols=("bu3dfe-legacy",),
        out=out,
        manifests=small / "m",
        preset="tiny",
        overrides={"epochs": 1},
        repetitions=1,
        max_folds=2,
        environment=CPU,
    )
    return EvalSpec(**(values | changes))
