"""Speed levers (train.environment.Speed) and the AMP dtype, as far as a CPU can check them:
parsed, recorded beside the device and left out of a fold's identity (so a fold resumes under
other ones), refused on the CPU where they need CUDA, and channels-last the same run.

What only a GPU exercises is in tests/cuda (scripts/gpu-check.sh).
"""

import hashlib
import json

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.cli.options import training_options
from fer3d_bench.errors import ConfigError, Fer3dError
from fer3d_bench.train import loop, setup
from fer3d_bench.train.config import (
    PRESETS,
    TrainConfig,
    config_from_dict,
    config_keys,
    load_config_file,
    with_overrides,
)
from fer3d_bench.train.device import resolve
from fer3d_bench.train.environment import Placement, Speed
from fer3d_bench.train.fold import TrainingFold

CONFIG = with_overrides(PRESETS["tiny"], epochs=2, batch_size=6, effective_batch=12, seed=4)
TRAIN, TEST = np.arange(0, 20), np.arange(20, 26)
# each preset's config_sha256 as 0.16 recorded it: the AMP dtype, added after, must not move them
# (a run folder of 0.16 is resumed, not refused)
PRESET_SHA256 = {
    "paper": "032447649b842e09c4a88faa4c9891f1bfab6113d7699beae5aa9f974a0852cb",
    "cpu-small": "92fc2c70bb21b9841f72b49cad39e811832ea1933590c4a6f99b68e594dde51d",
    "tiny": "dfdf0f292807451574fa881841f61b33212b818d9f7ff00c7d48f83afbed7f27",
}


@pytest.fixture(scope="module")
def h5(tiny_merged):
    base, _, _ = tiny_merged
    return base / "merged.h5"


def _sha(values: dict) -> str:  # as evaluation.plan hashes a configuration
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_amp_dtype_leaves_every_presets_identity_as_it_was():
    for name, config in PRESETS.items():
        assert "amp_dtype" not in config.as_dict()
        assert _sha(config.as_dict()) == PRESET_SHA256[name], name
    chosen = with_overrides(PRESETS["paper"], amp_dtype="fp16")
    assert chosen.as_dict()["amp_dtype"] == "fp16"  # recorded, and so another identity
    assert _sha(chosen.as_dict()) != PRESET_SHA256["paper"]
    assert config_from_dict(chosen.as_dict()) == chosen
    assert config_from_dict(PRESETS["paper"].as_dict()).amp_dtype == "auto"
    assert "amp_dtype" in config_keys()


def test_an_amp_dtype_is_checked_where_it_is_read(tmp_path):
    with pytest.raises(ConfigError, match="amp_dtype = 'fp8': expected one of auto, bf16, fp16"):
        TrainConfig(amp_dtype="fp8")
    with pytest.raises(ConfigError, match="expected 'auto' with amp = false"):
        TrainConfig(amp=False, amp_dtype="bf16")
    path = tmp_path / "config.toml"
    path.write_text('amp = false\namp_dtype = "fp16"\n')
    with pytest.raises(ConfigError, match=r"config\.toml: amp_dtype = 'fp16': expected 'auto'"):
        load_config_file(path)
    path.write_text('amp_dtype = "bf16"\n')
    assert load_config_file(path).overrides == {"amp_dtype": "bf16"}


def test_an_amp_dtype_on_the_cpu_is_said_to_be_unused():
    dev = torch.device("cpu")
    assert loop._autocast(dev, PRESETS["tiny"]) is None  # as before: fp32 on the CPU, silently
    said = "amp_dtype = 'fp16' is CUDA only: this fold trains on cpu"
    with pytest.warns(UserWarning, match=said):
        assert loop._autocast(dev, with_overrides(PRESETS["tiny"], amp_dtype="fp16")) is None


def _parsed(*args: str) -> Speed:
    """The Speed that training_options builds from `args` (with --device cuda: parsed only,
    nothing here resolves or uses it)."""
    seen = []

    @click.command()
    @training_options
    def command(environment):
        seen.append(environment.placement)

    result = CliRunner().invoke(command, ["--device", "cuda", *args])
    assert result.exit_code == 0, result.output
    return seen[0].speed


def test_the_levers_are_parsed_into_the_placement():
    assert _parsed() == Speed()
    assert _parsed("--compile", "cuda-graphs", "--fused-adamw", "--contiguous") == Speed(
        compile="cuda-graphs", fused_adamw=True, channels_last=False
    )
    assert _parsed("--compile", "on", "--channels-last").channels_last is True
    result = CliRunner().invoke(main, ["evaluate", "--compile", "max"])
    assert result.exit_code == 2 and "'max' is not one of 'off', 'on', 'cuda-graphs'" in (
        result.output
    )


def test_cuda_only_levers_are_refused_on_the_cpu_with_one_line():
    with pytest.raises(Fer3dError) as refused:
        resolve(Placement("cpu", speed=Speed(fused_adamw=True)))
    assert str(refused.value) == (
        "--fused-adamw needs a CUDA device; this fold trains on cpu (leave it out, or train "
        "with --device cuda)"
    )
    with pytest.raises(Fer3dError, match="cuda-graphs and --fused-adamw need a CUDA device"):
        resolve(Placement("cpu", speed=Speed(compile="cuda-graphs", fused_adamw=True)))
    # what runs on a CPU is taken, the layout resolved with the device (contiguous there)
    placed = resolve(Placement("cpu", speed=Speed(compile="on")))
    assert placed.speed == Speed(compile="on", channels_last=False)
    assert resolve(Placement("cpu", speed=Speed(channels_last=True))).speed.channels_last


def test_the_cli_refuses_a_cuda_lever_on_the_cpu(small, tmp_path):
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-full"]
    args += ["--out", str(tmp_path / "run"), "--manifests", str(small / "m"), "--preset", "tiny"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu", "--fused-adamw"])
    assert result.exit_code == 2  # a usage error: refused before anything was read
    assert "--fused-adamw needs a CUDA device; this fold trains on cpu" in result.output
    assert not (tmp_path / "run").exists()
    # "auto" is resolved where the folds train: here, a CPU, so before anything was planned
    result = CliRunner().invoke(main, [*args, "--device", "auto", "--compile", "cuda-graphs"])
    assert result.exit_code == 1
    assert "--compile cuda-graphs needs a CUDA device; this fold trains on cpu" in result.output
    assert not (tmp_path / "run" / "run.json").exists()


def test_compile_wraps_the_forward_as_asked(monkeypatch):
    """torch.compile itself is exercised on a GPU (tests/cuda); here, that it is asked for
    with the mode each choice names, and that checkpoints keep the model's own keys."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append(kw) or (lambda *a: a))
    model = torch.nn.Linear(2, 2)
    assert setup.compiled(model, "off") is model
    setup.compiled(model, "on")
    setup.compiled(model, "cuda-graphs")
    modes = [call.pop("mode") for call in calls]
    assert modes == [None, "reduce-overhead"] and calls == [{"dynamic": False}] * 2


@pytest.mark.parametrize("fused", [True, None])
def test_a_resumed_optimizer_takes_this_runs_fused_choice(fused):
    """load_state_dict would take `fused` from the checkpoint; the run's own choice wins."""
    other = None if fused else True
    params = [torch.nn.Parameter(torch.ones(3))]
    before = torch.optim.AdamW(params, fused=other)
    params[0].grad = torch.ones(3)
    before.step()
    after = torch.optim.AdamW(params, fused=fused)
    after.load_state_dict(before.state_dict())
    assert after.param_groups[0]["fused"] is other  # torch's own behaviour
    setup._keep_fused(after, after.defaults["fused"])
    assert after.param_groups[0]["fused"] is fused
    step = after.state[params[0]]["step"]
    assert step.dtype == torch.float32 and float(step) == 1.0
    after.step()  # and it steps
    assert float(after.state[params[0]]["step"]) == 2.0


def _train(h5, out, speed, **kwargs):
    fold = TrainingFold(h5, TRAIN, TEST)
    return loop.train(fold, out, CONFIG, resolve(Placement("cpu", speed=speed)), **kwargs)


def test_channels_last_on_the_cpu_is_the_same_run_and_a_fold_resumes_under_another(h5, tmp_path):
    contiguous = _train(h5, tmp_path / "contiguous", Speed())
    last = _train(h5, tmp_path / "last", Speed(channels_last=True))
    _train(h5, tmp_path / "mixed", Speed(), stop_after=1)  # the checkpoint knows no lever...
    mixed = _train(h5, tmp_path / "mixed", Speed(channels_last=True))  # ...so it resumes
    assert len(mixed.history) == 2
    # other convolution kernels sum in another order: after two epochs the embeddings moved
    # by up to 2e-3 (measured), the predictions not at all
    for other in (last, mixed):
        assert other.predictions == contiguous.predictions
        for sample, vector in contiguous.embeddings.items():
            np.testing.assert_allclose(other.embeddings[sample], vector, rtol=1e-2, atol=1e-2)
        for ours, theirs in zip(other.history, contiguous.history, strict=True):
            assert ours["loss_total"] == pytest.approx(theirs["loss_total"], rel=1e-3)
    # the comparison can fail: another seed is another run
    other_seed = loop.train(
        TrainingFold(h5, TRAIN, TEST),
        tmp_path / "seed",
        with_overrides(CONFIG, seed=5),
        resolve(Placement("cpu")),
    )
    assert other_seed.history[0]["loss_total"] != pytest.approx(
        contiguous.history[0]["loss_total"], rel=1e-3
    )


def test_evaluate_records_the_levers_beside_the_device_not_in_the_identity(small, tmp_path):
    out = tmp_path / "run"
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-full"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "1", "--max-folds", "1", "--device", "cpu"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    contiguous = {"compile": "off", "fused_adamw": False, "channels_last": False}
    result_path = out / "bu3dfe-full" / "0" / "0" / "result.json"
    result = json.loads(result_path.read_text())
    assert result["device"] == "cpu" and result["speed"] == contiguous
    assert "speed" not in json.dumps(result["job"])  # the fold's identity
    assert json.loads((out / "run.json").read_text())["speed"] == contiguous
    again = CliRunner().invoke(main, [*args, "--channels-last"])  # the same jobs: done
    assert again.exit_code == 0, again.output
    assert "1 of 1 fold jobs already done" in again.output
    info = json.loads((out / "run.json").read_text())
    assert info["speed"] == contiguous  # what was recorded first stays...
    assert info["resumed_with"][-1]["speed"] == contiguous | {"channels_last": True}  # ...and this
