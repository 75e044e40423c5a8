"""Weights from local files into a model's backbones: what is loaded, what is refused (always a
WeightsError naming the file), what is warned about, and the report a run folder records."""

import struct
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from fer3d_bench.errors import Fer3dError, FileError
from fer3d_bench.train.config import ModelConfig
from fer3d_bench.train.model import FerNet
from fer3d_bench.weights import known
from fer3d_bench.weights.backbone import (
    LoadReport,
    load_backbone_weights,
    map_backbone_keys,
    read_state_dict,
    state_dict_of,
)
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.files import import_weights, read_weights
from fer3d_bench.weights.known import KnownWeights, file_hashes, safetensors_metadata
from fer3d_bench.weights.request import PretrainedWeights

TINY = ModelConfig(
    backbone="test_efficientnet",
    token_dim=32,
    heads=2,
    layers=1,
    mlp_hidden=48,
    attention_modules=3,
    attention_reduction=4,
    num_classes=7,
    input_size=64,
)


def tiny(**changes) -> FerNet:
    return FerNet(replace(TINY, **changes)).eval()


def load(model: FerNet, path: Path, **request) -> LoadReport:
    """As the training loop calls it."""
    weights = PretrainedWeights(path, **request)
    return load_backbone_weights(model.backbones(), model.config.backbone, weights)


def classifier(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=5)


HEAD_KEYS = {"conv_head.weight", "bn2.weight", "classifier.weight", "classifier.bias"}


def test_state_dict_loads_into_both_backbones(tmp_path: Path):
    source = classifier().state_dict()
    path = tmp_path / "weights.pth"
    torch.save(source, path)
    model = tiny()
    report = load(model, path)
    assert isinstance(report, LoadReport) and report.source == "state_dict"
    assert report.missing == []
    assert set(report.unexpected) >= HEAD_KEYS
    assert not any(k.startswith(("blocks.", "conv_stem", "bn1.")) for k in report.unexpected)
    for backbone in model.backbones():
        loaded = backbone.state_dict()
        shared = source.keys() & loaded.keys()
        assert len(shared) == len(loaded)
        assert all(torch.equal(loaded[k], source[k]) for k in shared)


def test_the_report_is_what_weights_report_json_records(tmp_path: Path):
    source = classifier().state_dict()
    path = tmp_path / "weights.pth"
    torch.save(source, path)
    record = asdict(load(tiny(), path))
    assert list(record) == ["missing", "unexpected", "source"]
    assert record["missing"] == [] and record["source"] == "state_dict"
    assert record["unexpected"] == sorted(record["unexpected"])
    assert set(record["unexpected"]) >= HEAD_KEYS


def test_an_rgb_only_model_loads_its_one_backbone(tmp_path: Path):
    source = classifier().state_dict()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    model = tiny(fusion="rgb-attention")
    report = load(model, path)
    assert report.source == "safetensors" and report.missing == []
    assert torch.equal(
        model.rgb_backbone.state_dict()["conv_stem.weight"], source["conv_stem.weight"]
    )


def test_whole_model_pickle_needs_trust(tmp_path: Path):
    source = classifier()
    source.classifier = nn.Linear(source.num_features, 8)  # as HSEmotion replaces it
    path = tmp_path / "enet_b2_8.pt"
    torch.save(source, path)
    model = tiny()
    with pytest.raises(Fer3dError, match="--trust-pickle"):
        load(model, path)
    with pytest.warns(UserWarning, match="arbitrary code") as warned:
        report = load(model, path, trust_pickle=True)
    ours = [w for w in warned if "arbitrary code" in str(w.message)]
    assert [w.filename for w in ours] == [__file__]  # the caller of load_backbone_weights
    assert report.source == "pickle" and report.missing == []
    expected = source.state_dict()["conv_stem.weight"]
    assert torch.equal(model.depth_backbone.state_dict()["conv_stem.weight"], expected)


def test_a_known_file_for_another_architecture_is_warned_about_when_allowed(
    tmp_path: Path, monkeypatch
):
    path = tmp_path / "face.pth"
    torch.save(classifier().state_dict(), path)
    entry = KnownWeights(
        "enet_b2_7", "models/affectnet_emotions/enet_b2_7.pt", file_hashes(path).git_blob_sha1,
        "tf_efficientnet_b2", 260, "AffectNet", "state dict",
    )  # fmt: skip
    monkeypatch.setattr(known, "known_weights", lambda: {entry.git_blob_sha1: entry})
    with pytest.raises(WeightsError, match="enet_b2_7.*tf_efficientnet_b2.*test_efficientnet"):
        load(tiny(), path)
    with pytest.warns(UserWarning, match="not the architecture it was made for") as warned:
        report = load(tiny(), path, allow_architecture_mismatch=True)
    ours = [w for w in warned if "made for" in str(w.message)]
    assert [w.filename for w in ours] == [__file__]
    assert report.source == "state_dict" and report.missing == []


def test_garbage_file_is_named(tmp_path: Path):
    path = tmp_path / "not_weights.pth"
    path.write_bytes(b"this is not a torch file\n" * 10)
    with pytest.raises(Fer3dError, match="not_weights.pth"):
        load(tiny(), path)


def test_weights_of_another_model_are_refused(tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3), "layer1.0.conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(Fer3dError, match="other.pth"):
        load(tiny(), path)


def test_no_file_requested_is_a_caller_error():
    with pytest.raises(ValueError, match="no weights file"):
        load(tiny(), None)


def missing_file(folder: Path) -> Path:
    return folder / "absent.pth"


def damaged_safetensors(folder: Path) -> Path:
    """A safetensors header length and a "{", then no valid header."""
    path = folder / "damaged.safetensors"
    path.write_bytes(struct.pack("<Q", 12) + b"{not json..." + b"\0" * 64)
    return path


def untrusted_pickle(folder: Path) -> Path:
    path = folder / "whole_model.pt"
    torch.save(classifier(), path)
    return path


def garbage(folder: Path) -> Path:
    path = folder / "garbage.pth"
    path.write_bytes(b"this is not a torch file\n" * 10)
    return path


def no_matching_key(folder: Path) -> Path:
    path = folder / "other_model.pth"
    torch.save({"fc.weight": torch.zeros(3, 3), "layer1.0.conv1.weight": torch.zeros(1)}, path)
    return path


def shape_mismatch(folder: Path) -> Path:
    path = folder / "wrong_shapes.pth"
    state = classifier().state_dict()
    state["conv_stem.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(state, path)
    return path


def not_weights(folder: Path) -> Path:
    path = folder / "numbers.pth"
    torch.save([1, 2, 3], path)
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (missing_file, "weights file not found"),
        (damaged_safetensors, "damaged safetensors file"),
        (untrusted_pickle, "holds pickled objects"),
        (garbage, "not a torch weights file"),
        (no_matching_key, "no key matches the test_efficientnet backbone"),
        (shape_mismatch, "weights do not fit the test_efficientnet backbone"),
        (not_weights, "holds a list, not model weights"),
    ],
)
def test_every_unusable_file_is_a_weights_error_naming_it(make, problem, tmp_path: Path):
    path = make(tmp_path)
    with pytest.raises(WeightsError) as raised:
        load(tiny(), path)
    error = raised.value
    assert isinstance(error, FileError) and isinstance(error, Fer3dError)
    assert error.path == path
    assert problem in error.problem
    assert str(error) == f"{path}: {error.problem}"


def torchscript(folder: Path) -> Path:
    path = folder / "scripted.pt"
    torch.jit.script(nn.Linear(2, 2)).save(str(path))
    assert zipfile.is_zipfile(path)
    return path


def head_only(folder: Path) -> Path:
    path = folder / "head.pth"
    torch.save({"classifier.weight": torch.zeros(2, 2)}, path)
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:'torch.load' received a zip file:UserWarning")
@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (missing_file, "weights file not found"),
        (damaged_safetensors, "damaged safetensors file"),
        (garbage, "cannot be read as a torch file"),
        (torchscript, "a TorchScript archive"),
        (not_weights, "holds no module or state dict"),
    ],
)
def test_reading_and_importing_raise_weights_errors_too(make, problem, tmp_path: Path):
    path = make(tmp_path)
    with pytest.raises(WeightsError) as raised:
        read_weights(path)
    assert raised.value.path == path and problem in raised.value.problem
    with pytest.raises(WeightsError) as raised:
        import_weights(path, tmp_path / "out.safetensors")
    assert raised.value.path == path and problem in raised.value.problem


def test_an_import_without_backbone_tensors_is_a_weights_error(tmp_path: Path):
    path = head_only(tmp_path)
    with pytest.raises(WeightsError, match="no backbone tensors") as raised:
        import_weights(path, tmp_path / "out.safetensors")
    assert raised.value.path == path


def test_damaged_safetensors_metadata_is_a_weights_error(tmp_path: Path):
    path = damaged_safetensors(tmp_path)
    with pytest.raises(WeightsError, match="damaged safetensors file") as raised:
        safetensors_metadata(path)
    assert raised.value.path == path


def test_read_state_dict_unwraps_checkpoints_and_module_prefixes(tmp_path: Path):
    source = classifier().state_dict()
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.items()}}, path)
    state, form = read_state_dict(path, trust_pickle=False)
    assert form == "state_dict" and list(state) == list(source)
    assert state_dict_of(path, classifier()).keys() == source.keys()


def test_map_backbone_keys_flattens_the_first_level_and_leaves_heads_out():
    target = {"stages_0.weight": torch.zeros(1), "conv_stem.weight": torch.zeros(1)}
    state = {
        "stages.0.weight": torch.ones(1),
        "conv_stem.weight": torch.ones(1),
        "classifier.bias": torch.ones(1),
    }
    mapped, left_out = map_backbone_keys(state, target)
    assert sorted(mapped) == ["conv_stem.weight", "stages_0.weight"]
    assert left_out == ["classifier.bias"]
