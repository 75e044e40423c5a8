"""The search space: what the paper tuned, as data, with ranges of our choosing.

The paper names the hyperparameters it searched (batch size, the two learning rates, weight
decay, lambda1, lambda2 and S, the attention modules per modality) but not their ranges. Each
range here spans about a decade on either side of the paper's value (the `paper` preset), on a
log scale for the rates and weights, since what matters is their order of magnitude.

Every name is a dotted key of `fer3d_bench.train.config` (`with_overrides`), so a trial's
params are the overrides it trains with and the overrides the best trial's TOML file holds.

The effective batch is a choice per preset: gradients accumulate from the preset's per-step
`batch_size` (16 in every preset) up to `effective_batch`, so each choice is a multiple of it (a
smaller effective batch would silently train as `batch_size`). `paper` searches around its 128
(256 in the full 5-fold setup); `cpu-small` and `tiny`, meant for small datasets, stay at 64 or
less, so that a few hundred samples still give several optimiser steps per epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fer3d_bench.errors import ConfigError
from fer3d_bench.train.config import PRESETS

LOG, INT, CHOICE = "log-uniform", "int", "categorical"


@dataclass(frozen=True)
class Param:
    """One searched key: log-uniform or integer in [low, high], or one of `choices`."""

    kind: str
    low: float = 0
    high: float = 0
    choices: tuple = ()


EFFECTIVE_BATCH = {  # preset -> choices, multiples of its batch_size
    "paper": (32, 64, 128, 256),
    "cpu-small": (16, 32, 64),
    "tiny": (16, 32, 64),
}

SPACE: dict[str, Param] = {  # the paper's value in the comment
    "effective_batch": Param(CHOICE),  # 128; choices per preset (EFFECTIVE_BATCH)
    "lr_backbone": Param(LOG, 1e-5, 1e-3),  # 1e-4
    "lr_head": Param(LOG, 1e-4, 1e-2),  # 1e-3
    "weight_decay": Param(LOG, 1e-4, 1e-1),  # 0.01
    "loss.lambda1": Param(LOG, 1e-3, 1e-1),  # 0.01, the island loss's weight
    "loss.lambda2": Param(LOG, 1.0, 100.0),  # 10, the island term's weight within it
    "model.attention_modules": Param(INT, 1, 8),  # S = 4
}


def space(preset: str) -> dict[str, Param]:
    """The search space of a preset: SPACE with that preset's effective batch choices."""
    if preset not in EFFECTIVE_BATCH:
        raise ConfigError(f"preset {preset!r} is not one of {sorted(PRESETS)}")
    return SPACE | {"effective_batch": Param(CHOICE, choices=EFFECTIVE_BATCH[preset])}


def suggest(trial, preset: str) -> dict:
    """The trial's overrides, drawn by its sampler (an `optuna.Trial`'s suggest methods)."""
    params = {}
    for name, param in space(preset).items():
        if param.kind == LOG:
            params[name] = trial.suggest_float(name, param.low, param.high, log=True)
        elif param.kind == INT:
            params[name] = trial.suggest_int(name, int(param.low), int(param.high))
        else:
            params[name] = trial.suggest_categorical(name, list(param.choices))
    return params


def space_record(preset: str) -> dict:
    """The space as plain JSON values (name -> kind, bounds, choices), for the study's setup."""
    return {
        name: asdict(param) | {"choices": list(param.choices)}
        for name, param in space(preset).items()
    }
