"""How the tests ask for an evaluation run on the small world (`worlds.SMALL`): one spec
builder and the training environments they train with, written once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from fer3d_bench.evaluation.plan import EvalSpec
from fer3d_bench.train.environment import Placement, TrainingEnvironment
from fer3d_bench.train.losses import FerLoss
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


@contextlib.contextmanager
def diverging() -> Iterator[None]:
    """Training in this block goes to NaN at its first step: the loss is multiplied by NaN,
    as an overflowing loss weight or `lr = nan` would make it, and the trainer's own
    divergence check fires (such settings are refused in a configuration now)."""
    real = FerLoss.forward

    def forward(self, *args, **kwargs):
        total, parts = real(self, *args, **kwargs)
        return total * float("nan"), parts

    with mock.patch.object(FerLoss, "forward", forward):
        yield
