"""HSEmotion-like weight files, built here: recognised by hash, matched to the backbones they
fit, and a whole-model pickle whose classes no longer exist (and which carries a payload) turned
into a safetensors file without importing or running anything it names."""

import importlib.util
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import timm
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from fer3d_bench.cli import main
from fer3d_bench.train.config import PRESETS
from fer3d_bench.train.model import FerNet
from fer3d_bench.weights import known
from fer3d_bench.weights.backbone import load_backbone_weights
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.files import import_weights, read_weights
from fer3d_bench.weights.known import KnownWeights, file_hashes, refuse_other_architecture
from fer3d_bench.weights.request import PretrainedWeights

TINY = PRESETS["tiny"].model


class Payload:
    """Unpickling this writes a marker file: what a crafted or compromised file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


def face_model(architecture: str) -> nn.Module:
    """An HSEmotion face model: a timm model whose classifier is Identity."""
    return timm.create_model(architecture, pretrained=False, num_classes=0).eval()


def legacy_pickle(architecture: str, folder: Path) -> tuple[Path, nn.Module, Path]:
    """(file, model, marker): an emotion model saved whole, its timm module paths renamed to
    ones that do not exist (as an old timm's do), with a payload attached."""
    model = face_model(architecture)
    model.classifier = nn.Linear(model.num_features, 7)
    marker = folder / "payload-ran"
    model.payload = Payload(marker)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    del model.payload
    path = folder / f"{architecture}_7.pt"
    with zipfile.ZipFile(buffer) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith("/data.pkl"):  # GLOBAL opcodes: b"c" module b"\n" name
                data = re.sub(
                    rb"ctimm\.models\.([\w.]+)\n", rb"ctimm.models.\1_legacy_gone\n", data
                )
                data = re.sub(
                    rb"ctimm\.layers\.([\w.]+)\n", rb"ctimm.layers.\1_legacy_gone\n", data
                )
                assert b"_legacy_gone\n" in data and b"exec" in data
            new.writestr(info.filename, data)
    assert importlib.util.find_spec("timm.models.efficientnet_legacy_gone") is None
    return path, model, marker


@pytest.fixture(scope="module")
def b2_pickle(tmp_path_factory):
    return legacy_pickle("tf_efficientnet_b2", tmp_path_factory.mktemp("b2"))


def expected_backbone(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}


def test_import_recovers_the_backbone_without_running_the_pickle(b2_pickle, tmp_path):
    path, model, marker = b2_pickle
    out = tmp_path / "backbone.safetensors"
    result = CliRunner().invoke(main, ["weights", "import", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert "classifier.weight" in result.output and "classifier.bias" in result.output
    tensors, expected = load_file(out), expected_backbone(model)
    assert sorted(tensors) == sorted(expected)
    assert all(torch.equal(tensors[k], expected[k]) for k in expected)
    assert any(k.endswith("num_batches_tracked") for k in tensors)
    with safe_open(str(out), framework="pt") as stream:
        metadata = stream.metadata()
    hashes = file_hashes(path)
    assert metadata["source_file"] == path.name and metadata["known"] == "unknown"
    assert metadata["source_sha256"] == hashes.sha256
    assert metadata["source_git_blob_sha1"] == hashes.git_blob_sha1
    assert json.loads(metadata["dropped_keys"]) == ["classifier.weight", "classifier.bias"]
    assert list(read_weights(path).tensors) == list(model.state_dict())  # state_dict()'s order
    missing, unexpected = face_model("tf_efficientnet_b2").load_state_dict(tensors, strict=False)
    assert missing == [] and unexpected == []


def test_the_file_really_needs_a_missing_timm_module(b2_pickle):
    """The file is what users hold: torch.load as such fails on the module path (run apart, so
    that the payload could write only into the test's folder if the rewrite were wrong)."""
    path, _, marker = b2_pickle
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ModuleNotFoundError" in run.stderr and "_legacy_gone" in run.stderr
    assert not marker.exists()


def test_inspect_names_each_form_and_the_backbones_it_fits(b2_pickle, tmp_path):
    path, model, marker = b2_pickle
    state = tmp_path / "state_vggface2_enet2.pt"
    torch.save(face_model("tf_efficientnet_b2").state_dict(), state)
    imported = tmp_path / "backbone.safetensors"
    import_weights(path, imported)
    for file, form in [(state, "state dict"), (path, "whole-model pickle"), (imported, "safet")]:
        result = CliRunner().invoke(main, ["weights", "inspect", str(file)])
        assert result.exit_code == 0, result.output
        assert form in result.output and "known: no" in result.output
        assert "fits: tf_efficientnet_b2, efficientnet_b2\n" in result.output
        assert file_hashes(file).git_blob_sha1 in result.output
    assert not marker.exists()


def test_inspect_recognises_a_known_file_by_hash(monkeypatch, tmp_path):
    path = tmp_path / "state_vggface2_enet0_new.pt"
    torch.save(face_model("tf_efficientnet_b0").state_dict(), path)
    entry = KnownWeights(
        "state_vggface2_enet0_new", "models/x.pt", file_hashes(path).git_blob_sha1,
        "tf_efficientnet_b0", 224, "VGGFace2 face identification", "state dict",
    )  # fmt: skip
    monkeypatch.setattr(known, "known_weights", lambda: {entry.git_blob_sha1: entry})
    result = CliRunner().invoke(main, ["weights", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "known: state_vggface2_enet0_new" in result.output
    assert "made for tf_efficientnet_b0 at 224 px" in result.output
    assert "fits: tf_efficientnet_b0, efficientnet_b0\n" in result.output


def test_the_table_holds_the_upstream_files():
    table = known.known_weights()
    assert len(table) == 6 and all(re.fullmatch("[0-9a-f]{40}", sha) for sha in table)
    assert table["5a8ccbb17913461296003be726a22b6fc40d602b"].name == "enet_b2_7"
    assert {k.architecture for k in table.values()} == {"tf_efficientnet_b0", "tf_efficientnet_b2"}


def load_into(model: FerNet, path: Path, **request):
    """As the training loop calls it."""
    weights = PretrainedWeights(path, **request)
    return load_backbone_weights(model.backbones(), model.config.backbone, weights)


@pytest.fixture(scope="module")
def tiny_pickle(tmp_path_factory):
    return legacy_pickle(TINY.backbone, tmp_path_factory.mktemp("tiny"))


def test_backbone_weights_refuses_a_pickle_and_points_to_import(tiny_pickle, tmp_path):
    path, model, marker = tiny_pickle
    with pytest.raises(WeightsError, match="weights import"):
        load_into(FerNet(TINY), path)
    out = tmp_path / "backbone.safetensors"
    import_weights(path, out)
    fernet = FerNet(TINY)
    report = load_into(fernet, out)
    assert report.source == "safetensors" and report.missing == []
    expected = model.state_dict()["conv_stem.weight"]
    assert torch.equal(fernet.depth_backbone.state_dict()["conv_stem.weight"], expected)
    assert not marker.exists()


def test_a_known_file_is_refused_by_another_architecture(tiny_pickle, monkeypatch, tmp_path):
    path, _, _ = tiny_pickle
    entry = KnownWeights(
        "enet_b2_7", "models/affectnet_emotions/enet_b2_7.pt", file_hashes(path).git_blob_sha1,
        "tf_efficientnet_b2", 260, "AffectNet", "whole-model pickle",
    )  # fmt: skip
    monkeypatch.setattr(known, "known_weights", lambda: {entry.git_blob_sha1: entry})
    out = tmp_path / "backbone.safetensors"
    import_weights(path, out)
    for file in (path, out):  # the file itself, and the safetensors made from it
        with pytest.raises(WeightsError, match="enet_b2_7.*tf_efficientnet_b2.*test_efficientnet"):
            load_into(FerNet(TINY), file, trust_pickle=True)
    for file in (path, out):
        refuse_other_architecture(file, "tf_efficientnet_b2.ns_jft_in1k")  # what it was made for


def test_weights_help_imports_no_torch():
    modules = "[m for m in ('torch', 'timm') if m in sys.modules]"
    code = f"import sys, fer3d_bench.cli.weights; print({modules})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
