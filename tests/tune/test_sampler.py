"""The search space and the draws: config keys, batches that fit, reproducible per trial."""

import optuna
import pytest

from fer3d_bench.errors import ConfigError
from fer3d_bench.train.config import PRESETS, config_keys, variant_configs
from fer3d_bench.tune.sampler import TrialSeededSampler, draw_seed
from fer3d_bench.tune.space import CHOICE, EFFECTIVE_BATCH, SPACE, space, suggest


def _draws(seed: int, trials: int = 6, fixed: dict | None = None) -> dict[int, dict]:
    """Trial number -> params of a fresh in-memory study; `fixed` enqueues trial 2's params."""
    study = optuna.create_study(direction="maximize", sampler=TrialSeededSampler(seed))
    for number in range(trials):
        if number == 2 and fixed:
            study.enqueue_trial(fixed)
        study.optimize(lambda trial: float(len(suggest(trial, "tiny"))), n_trials=1)
    return {t.number: t.params for t in study.trials}


def test_same_seed_draws_the_same_params_for_each_trial_number_other_seed_others():
    first, again, other = _draws(0), _draws(0), _draws(7)
    assert first == again
    assert all(first[n] != other[n] for n in first)
    floats = [k for k, p in SPACE.items() if p.kind != CHOICE and k != "model.attention_modules"]
    assert all(first[n][k] != other[n][k] for n in first for k in floats)
    assert len({tuple(sorted(p.items())) for p in first.values()}) == len(first)


def test_a_draw_depends_on_its_trial_number_not_on_the_trials_before():
    """What a resumed study, or a second worker, draws for trial k: trial 2 was another point
    here (its params given), and every later trial is drawn as before."""
    first = _draws(0)
    changed = _draws(0, fixed=dict(first[5]))
    assert changed[2] == first[5]
    assert {n: p for n, p in changed.items() if n != 2} == {
        n: p for n, p in first.items() if n != 2
    }
    assert draw_seed(0, 3, "lr_head") != draw_seed(0, 4, "lr_head") != draw_seed(1, 4, "lr_head")


def test_every_searched_key_is_a_config_key_and_every_bound_trains():
    assert set(SPACE) <= set(config_keys())
    assert set(EFFECTIVE_BATCH) == set(PRESETS)
    for preset, config in PRESETS.items():
        searched = space(preset)
        # gradients accumulate from batch_size up to effective_batch: whole multiples only
        assert all(c % config.batch_size == 0 for c in searched["effective_batch"].choices)
        for end in ("low", "high"):
            overrides = {
                k: (p.choices[0] if p.kind == CHOICE else type(p.low)(getattr(p, end)))
                for k, p in searched.items()
            }
            built = variant_configs(preset, overrides)["full"]
            assert built.model.attention_modules == overrides["model.attention_modules"]
    assert max(EFFECTIVE_BATCH["tiny"]) <= 64
    with pytest.raises(ConfigError, match="preset 'huge'"):
        space("huge")
