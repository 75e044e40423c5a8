"""Nothing is ever downloaded (issue 25, class 2): a backbone name from a file (a --config, a
result.json being explained) that is not one of BACKBONES is refused before timm sees it,
and the hub is switched offline besides. Every test runs with the network blocked and timm's
and huggingface_hub's download functions replaced by recorders."""

import json
import os
import shutil
import socket

import huggingface_hub.constants
import pytest
import timm
import timm.models._factory
import timm.models._hub
from click.testing import CliRunner
from runs import small_spec

from fer3d_bench.cli import main
from fer3d_bench.errors import ConfigError
from fer3d_bench.pipeline.evaluate import Launch, evaluate
from fer3d_bench.train.config import BACKBONES, ModelConfig
from fer3d_bench.train.model import build_backbone

HOSTILE_NAMES = [
    "hf-hub:timm/resnet18.a1_in1k",
    "hf_hub:timm/resnet18",
    "local-dir:/tmp/model",
    "timm/resnet18",
    "https://example.org/model.pth",
    "/etc/passwd",
    "resnet18",  # a real timm model, but not one the toolkit supports
    "tf_efficientnet_b2.ns_jft_in1k",  # a pretrained tag selects weights to download
]


@pytest.fixture
def network(monkeypatch):
    """The attempts made to reach anything: a socket connection or a hub download."""
    attempts: list[str] = []

    def refuse(name):
        def record(*args, **kwargs):
            attempts.append(name)
            raise OSError(f"network blocked by the test ({name})")

        return record

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", refuse("hf_hub_download"))
    for module in (timm.models._hub, timm.models._factory):
        monkeypatch.setattr(
            module, "load_model_config_from_hf", refuse("load_model_config_from_hf")
        )
    return attempts


def test_the_recorders_see_what_timm_would_fetch(network):
    """The guard of the other tests is real: timm itself, given an hf-hub name, tries."""
    with pytest.raises(OSError, match="network blocked"):
        timm.create_model("hf-hub:timm/resnet18.a1_in1k", pretrained=False)
    assert network == ["load_model_config_from_hf"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_builder_and_the_config_refuse_other_names(name, network):
    with pytest.raises(ConfigError, match=r"model.backbone = .*: expected one of tf_effici"):
        build_backbone(name)
    with pytest.raises(ConfigError, match=r"model.backbone = .*: expected one of tf_effici"):
        ModelConfig(backbone=name, token_dim=64, heads=4)
    assert network == []


def test_building_switches_the_hub_offline(network, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    backbone = build_backbone("test_efficientnet")
    assert backbone.feature_info.channels()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE
    assert huggingface_hub.constants.is_offline_mode()
    assert "test_efficientnet" in BACKBONES and network == []


def test_a_config_file_naming_a_hub_model_is_refused(network, tmp_path):
    config, dataset = tmp_path / "hub.toml", tmp_path / "merged.h5"
    config.write_text('preset = "tiny"\n[model]\nbackbone = "hf-hub:timm/x"\n')
    dataset.write_bytes(b"")
    result = CliRunner().invoke(
        main,
        ["evaluate", "--dataset", str(dataset), "--protocol", "bu3dfe-legacy"]
        + ["--out", str(tmp_path / "run"), "--config", str(config), "--device", "cpu"],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {config}: model.backbone = 'hf-hub:timm/x': expected one of "
        + ", ".join(BACKBONES)
    ]
    assert network == [] and sorted(tmp_path.iterdir()) == [config, dataset]


@pytest.fixture(scope="module")
def run(small, tmp_path_factory):
    """A real tiny run folder of one fold, trained for one epoch."""
    out = tmp_path_factory.mktemp("names") / "run"
    evaluate(small_spec(small, out, max_folds=1), Launch(progress=False), echo=lambda line: None)
    return out


def test_explaining_a_result_that_names_a_hub_model_is_refused(run, network, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")
    result_json = copy / "bu3dfe-legacy" / "0" / "0" / "result.json"
    record = json.loads(result_json.read_text())
    record["job"]["config"]["model"]["backbone"] = "hf-hub:timm/resnet18.a1_in1k"
    result_json.write_text(json.dumps(record))
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    result = CliRunner().invoke(main, ["explain", str(copy), "--per-class", "1"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "model.backbone = 'hf-hub:timm/resnet18.a1_in1k': expected one of" in lines[0]
    assert network == []
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before  # nothing written
