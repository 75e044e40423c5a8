"""Random search whose draw for trial k depends only on (seed, k, parameter name).

Optuna's RandomSampler draws from one random stream per process: two workers seeded alike would
draw the same points, and a resumed worker would draw the first points again. Here every draw
has its own seed, the first 32 bits of the sha256 of "fer3d-tune|<seed>|<trial number>|<name>",
and is made by a fresh `RandomSampler` of that seed (Optuna's own sampling, through its public
API). Trial numbers are unique within a study, so workers sharing one never draw the same
point, and a study resumed after a kill draws for trial k what it would have drawn anyway.
"""

from __future__ import annotations

import hashlib

from optuna.samplers import BaseSampler, RandomSampler


def draw_seed(seed: int, number: int, name: str) -> int:
    """The seed of one draw: reimplementable in a line anywhere."""
    text = f"fer3d-tune|{seed}|{number}|{name}"
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


class TrialSeededSampler(BaseSampler):
    """Independent random sampling, each parameter of each trial from its own seed."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        sampler = RandomSampler(seed=draw_seed(self.seed, trial.number, param_name))
        return sampler.sample_independent(study, trial, param_name, param_distribution)
