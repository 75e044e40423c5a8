"""Configuration values of the wrong type or out of range (issue 25, class 8): refused where
they are read, in one line naming the file, the field and what was expected; nothing is
trained, nothing written."""

from dataclasses import asdict

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.errors import ConfigError
from fer3d_bench.splits import MANIFESTS_DIR
from fer3d_bench.train.config import (
    PRESETS,
    RULES,
    TrainConfig,
    config_from_dict,
    config_keys,
    load_config_file,
    with_overrides,
)
from fer3d_bench.tune.space import CHOICE, space

BAD = [  # (the file's text, what the one line must say after "error: FILE: ")
    ('epochs = "x"', "epochs = 'x': expected a whole number >= 1"),
    ("epochs = 0", "epochs = 0: expected a whole number >= 1"),
    ("epochs = -1", "epochs = -1: expected a whole number >= 1"),
    ("epochs = 2.5", "epochs = 2.5: expected a whole number >= 1"),
    ("epochs = true", "epochs = True: expected a whole number >= 1"),
    ("batch_size = 0", "batch_size = 0: expected a whole number >= 1"),
    ("effective_batch = 0", "effective_batch = 0: expected a whole number >= 1"),
    ("lr_head = nan", "lr_head = nan: expected a finite number > 0"),
    ("lr_backbone = inf", "lr_backbone = inf: expected a finite number > 0"),
    ("lr_backbone = 0", "lr_backbone = 0: expected a finite number > 0"),
    ("weight_decay = -0.1", "weight_decay = -0.1: expected a finite number >= 0"),
    ("pct_start = 1.0", "pct_start = 1.0: expected a finite number > 0 and < 1"),
    ('augment = "yes"', "augment = 'yes': expected true or false"),
    ("seed = -3", "seed = -3: expected a whole number >= 0"),
    ("[model]\ninput_size = 0", "model.input_size = 0: expected a whole number >= 32"),
    ("[model]\ninput_size = 100000", "model.input_size = 100000: expected a whole number"),
    ("[model]\nheads = 0", "model.heads = 0: expected a whole number >= 1"),
    ("[model]\ntoken_dim = 100\nheads = 3", "model.heads = 3: expected a divisor of"),
    ("[model]\ndropout = 1.0", "model.dropout = 1.0: expected a finite number >= 0 and < 1"),
    ('[model]\nfusion = "mean"', "model.fusion = 'mean': expected one of attention, sum"),
    ("[loss]\nlambda1 = nan", "loss.lambda1 = nan: expected a finite number >= 0"),
    ("[model]\nlayers = [4]", "model.layers = an array: expected a whole number >= 1"),
    ("batch_size = 24\neffective_batch = 100", "effective_batch = 100: expected a multiple"),
    ('preset = ["paper"]', "preset = an array: expected one of paper, cpu-small, tiny"),
    ("[tuned]\nprotocol = [1]", "[tuned] must be a table of strings, numbers and booleans"),
    ("epochs = " + "[" * 3000 + "]" * 3000, "nested deeper than"),
]


@pytest.mark.parametrize(("text", "problem"), BAD, ids=[text[:28] for text, _ in BAD])
def test_evaluate_refuses_a_bad_config_value_in_one_line(text, problem, tmp_path):
    config, dataset, out = tmp_path / "bad.toml", tmp_path / "merged.h5", tmp_path / "run"
    config.write_text(text + "\n")
    dataset.write_bytes(b"")  # never opened: the configuration is read first
    result = CliRunner().invoke(
        main,
        ["evaluate", "--dataset", str(dataset), "--protocol", "bu3dfe-legacy"]
        + ["--out", str(out), "--config", str(config), "--device", "cpu"],
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {config}: ") and problem in lines[0], lines[0]
    assert sorted(tmp_path.iterdir()) == [config, dataset]  # no run folder, nothing else


def test_a_good_config_still_loads_as_written(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text('preset = "tiny"\nepochs = 3\nlr_head = 1\n[model]\nheads = 8\n')
    loaded = load_config_file(path)
    assert loaded.overrides == {"epochs": 3, "lr_head": 1, "model.heads": 8}
    assert type(loaded.overrides["lr_head"]) is int  # kept as written: records keep their bytes


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_train_refuses_epochs_below_one(epochs, tmp_path):
    manifest = next(MANIFESTS_DIR.glob("bu3dfe-legacy/*.json"))
    dataset = tmp_path / "merged.h5"
    dataset.write_bytes(b"")
    result = CliRunner().invoke(
        main,
        ["train", "--dataset", str(dataset), "--manifest", str(manifest)]
        + ["--out", str(tmp_path / "fold"), "--epochs", epochs, "--device", "cpu"],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: epochs = {epochs}: expected a whole number >= 1 and <= 100000"
    ]
    assert sorted(tmp_path.iterdir()) == [dataset]


def test_a_recorded_config_is_checked_naming_its_file():
    recorded = PRESETS["tiny"].as_dict()
    assert config_from_dict(recorded, "result.json") == PRESETS["tiny"]
    for change, problem in [
        ({"epochs": 0}, "epochs = 0: expected"),
        ({"model": recorded["model"] | {"backbone": "hf-hub:timm/x"}}, "model.backbone"),
        ({"model": recorded["model"] | {"heads": "4"}}, "model.heads = '4': expected"),
        ({"model": recorded["model"] | {"size": 64}}, "unknown configuration key(s) model.size"),
        ({"model": [1]}, "model and loss are not tables"),
        ({"speed": 3}, "unknown configuration key(s) speed"),
    ]:
        with pytest.raises(ConfigError) as raised:
            config_from_dict(recorded | change, "run/fold/result.json")
        assert str(raised.value).startswith("run/fold/result.json: ")
        assert problem in str(raised.value)
    with pytest.raises(ConfigError, match="^result.json: the configuration is not a table"):
        config_from_dict([1, 2], "result.json")


def test_every_key_has_a_rule_and_every_default_and_preset_keeps_it():
    assert sorted(RULES) == config_keys()
    for config in (TrainConfig(), *PRESETS.values()):
        flat = asdict(config)
        values = {k: v for k, v in flat.items() if k not in ("model", "loss")}
        values |= {f"model.{k}": v for k, v in flat["model"].items()}
        values |= {f"loss.{k}": v for k, v in flat["loss"].items()}
        assert all(RULES[k].accepts(v) for k, v in values.items())


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_value_tune_may_draw_is_a_valid_configuration(preset):
    """tune's search space stays inside the rules: a trial is never refused for its draw."""
    for name, param in space(preset).items():
        values = param.choices if param.kind == CHOICE else (param.low, param.high)
        for value in values:
            value = int(value) if name == "model.attention_modules" else value
            assert RULES[name].accepts(value), (name, value)
            with_overrides(PRESETS[preset], **{name: value})


def test_the_checks_are_where_every_config_is_made():
    with pytest.raises(ConfigError, match="batch_size = 0"):
        with_overrides(PRESETS["tiny"], batch_size=0)
    with pytest.raises(ConfigError, match="effective_batch = 24: expected a multiple of"):
        with_overrides(PRESETS["tiny"], batch_size=16, effective_batch=24)
    with pytest.raises(ConfigError, match="model.heads = 3: expected a divisor"):
        with_overrides(PRESETS["tiny"], **{"model.heads": 3})
