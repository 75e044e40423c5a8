"""The one-cycle schedule of Table III: each group from the minimum (1e-6) up to its own maximum
and back down to the minimum, torch's OneCycleLR with the two ends set per group; the minimum a
configuration key, checked where a configuration is read."""

import json

import pytest
import torch

from fer3d_bench.errors import ConfigError
from fer3d_bench.train.config import (
    PRESETS,
    TrainConfig,
    config_from_dict,
    load_config_file,
    with_overrides,
)
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.loop import train
from fer3d_bench.train.setup import one_cycle


def _schedule(config: TrainConfig, steps: int) -> list[list[float]]:
    """Each group's learning rate at every step of `config`'s schedule over `steps` steps,
    stepped as the trainer steps it (optimiser first, never past the last step)."""
    groups = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.AdamW(
        [{"params": [groups[0]], "lr": config.lr_backbone}, {"params": [groups[1]], "lr": 1.0}]
    )
    scheduler = one_cycle(optimizer, [config.lr_backbone, config.lr_head], steps, config)
    rates = [[g["lr"] for g in optimizer.param_groups]]
    for _ in range(steps - 1):
        optimizer.step()
        scheduler.step()
        rates.append([g["lr"] for g in optimizer.param_groups])
    return rates


def test_the_paper_schedule_goes_from_the_minimum_to_each_maximum_and_back():
    paper = PRESETS["paper"]
    assert (paper.min_lr, paper.lr_backbone, paper.lr_head) == (1e-6, 1e-4, 1e-3)
    rates = _schedule(paper, 100)  # pct_start 0.3: the peak falls on step 29 exactly
    backbone, head = [r[0] for r in rates], [r[1] for r in rates]
    assert rates[0] == [1e-6, 1e-6]  # not torch's max / 25
    assert backbone[29] == pytest.approx(1e-4, rel=1e-12)
    assert head[29] == pytest.approx(1e-3, rel=1e-12)
    assert max(backbone) == backbone[29] and max(head) == head[29]
    assert rates[-1] == pytest.approx([1e-6, 1e-6], rel=1e-9)
    assert all(a <= b for a, b in zip(head[:29], head[1:30], strict=True))  # rises
    assert all(a >= b for a, b in zip(head[29:], head[30:], strict=False))  # then falls
    # the scheduler's own record agrees with the groups, and a resume continues from it
    groups = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW([{"params": [groups[0]]}, {"params": [groups[1]]}])
    scheduler = one_cycle(optimizer, [1e-4, 1e-3], 100, paper)
    assert scheduler.get_last_lr() == [1e-6, 1e-6]
    assert [g["min_lr"] for g in optimizer.param_groups] == [1e-6, 1e-6]


def test_another_minimum_moves_both_ends():
    config = with_overrides(PRESETS["paper"], min_lr=2e-5)
    rates = _schedule(config, 50)
    assert rates[0] == [2e-5, 2e-5]
    assert rates[-1] == pytest.approx([2e-5, 2e-5], rel=1e-9)
    assert min(min(r) for r in rates) == pytest.approx(2e-5, rel=1e-9)


def test_the_recorded_rates_of_each_epoch_follow_the_schedule(small, tmp_path):
    config = with_overrides(PRESETS["tiny"], epochs=4, batch_size=8, effective_batch=8, min_lr=1e-5)
    fold = TrainingFold(small / "merged.h5", list(range(16)), list(range(16, 20)))
    result = train(fold, tmp_path / "fold", config, Placement("cpu"))
    expected = _schedule(config, 8)  # 16 samples in batches of 8: two steps an epoch
    recorded = [[e["lr_backbone"], e["lr_head"]] for e in result.history]
    # after epoch k the schedule stands at step 2k, never past its last step
    assert recorded == [expected[min(2 * k, 7)] for k in range(1, 5)]
    assert recorded[-1] == pytest.approx([1e-5, 1e-5], rel=1e-9)
    assert max(r[1] for r in recorded) <= config.lr_head
    lines = (tmp_path / "fold" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["lr_head"] for line in lines] == [r[1] for r in recorded]


def test_the_minimum_is_recorded_and_checked_wherever_a_configuration_is_read(tmp_path):
    assert PRESETS["paper"].as_dict()["min_lr"] == 1e-6
    assert "final_lr" not in PRESETS["paper"].as_dict()
    with pytest.raises(ConfigError, match=r"min_lr = -1e-06: expected a finite number >= 0"):
        with_overrides(PRESETS["paper"], min_lr=-1e-6)
    with pytest.raises(ConfigError, match=r"min_lr = 0.01: expected at most lr_backbone"):
        with_overrides(PRESETS["paper"], min_lr=1e-2)  # above the backbones' 1e-4
    with pytest.raises(ConfigError, match="min_lr = nan"):
        with_overrides(PRESETS["paper"], min_lr=float("nan"))
    path = tmp_path / "config.toml"
    path.write_text("min_lr = 1e-3\nlr_head = 1e-4\n")
    with pytest.raises(ConfigError, match=rf"{path}: min_lr = 0.001: expected at most lr_head"):
        load_config_file(path)
    path.write_text('min_lr = "small"\n')
    with pytest.raises(ConfigError, match=rf"{path}: min_lr = 'small'"):
        load_config_file(path)
    path.write_text("min_lr = 1e-7\n")
    assert load_config_file(path).overrides == {"min_lr": 1e-7}
    recorded = PRESETS["tiny"].as_dict()
    assert config_from_dict(recorded) == PRESETS["tiny"]
    with pytest.raises(ConfigError, match="result.json: min_lr = 1.0: expected at most"):
        config_from_dict(recorded | {"min_lr": 1.0}, "result.json")


def test_a_configuration_recorded_before_the_minimum_still_reads_back():
    """Up to 0.15 the schedule's end was `final_lr`: `explain` still builds such a fold's model;
    a resume compares the recorded keys, so such a folder is never continued."""
    old = PRESETS["tiny"].as_dict()
    old["final_lr"] = old.pop("min_lr")
    assert config_from_dict(old, "result.json") == PRESETS["tiny"]
    assert PRESETS["tiny"].as_dict() != old
