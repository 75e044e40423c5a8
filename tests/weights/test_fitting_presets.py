"""A weights file that does not fit the preset's backbone says which preset it does fit."""

from pathlib import Path

import pytest
import timm
import torch

from fer3d_bench.train.config import PRESETS
from fer3d_bench.train.model import FerNet
from fer3d_bench.weights.backbone import load_backbone_weights
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.known import PRESET_BACKBONES
from fer3d_bench.weights.request import PretrainedWeights


def test_the_weights_room_knows_each_presets_backbone():
    assert {name: c.model.backbone for name, c in PRESETS.items()} == PRESET_BACKBONES


def test_b0_weights_on_the_tiny_preset_name_cpu_small(tmp_path: Path):
    path = tmp_path / "b0.pt"
    torch.save(timm.create_model("efficientnet_b0", pretrained=False).state_dict(), path)
    model = FerNet(PRESETS["tiny"].model)
    with pytest.raises(WeightsError) as raised:
        load_backbone_weights(model.backbones(), "test_efficientnet", PretrainedWeights(path))
    error = raised.value
    said = str(error)
    assert "weights do not fit the test_efficientnet backbone" in said  # the detail stays
    assert "its tensors fit tf_efficientnet_b0, efficientnet_b0" in said
    assert "preset='cpu-small' (efficientnet_b0)" in said  # Python: the argument
    assert "--preset cpu-small (efficientnet_b0)" in error.for_cli()  # the CLI: the option
    assert "--preset" not in said and "paper" not in said
