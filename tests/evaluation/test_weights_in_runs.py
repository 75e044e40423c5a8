"""Which weights a run started from, in run.json, in every result.json and in the report's
title; and a protocol's own training settings (bu3dfe-full: the paper's batch of 256)."""

import hashlib
import json

import pytest
import timm
import torch
from click.testing import CliRunner
from runs import pretrained, small_spec

from fer3d_bench.cli import main
from fer3d_bench.evaluation.plan import plan as make_plan
from fer3d_bench.records.report import read_report
from fer3d_bench.report import write_report
from fer3d_bench.weights import known
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.known import KnownWeights, file_hashes


def _spec(small, out, **changes):
    """Both BU-3DFE protocols on the paper preset, one fold each (planned, not trained)."""
    paper = {"protocols": ("bu3dfe-legacy", "bu3dfe-full"), "preset": "paper", "overrides": {}}
    return small_spec(small, out, **(paper | {"max_folds": 1} | changes))


def face_state_dict(architecture, path):
    """An HSEmotion-style face model's file: the timm model with an Identity classifier."""
    model = timm.create_model(architecture, pretrained=False, num_classes=0)
    torch.save(model.state_dict(), path)
    return path


def register(monkeypatch, path, name, architecture, paper):
    """Make `path` a known file (the real table identifies files by their upstream hash)."""
    entry = KnownWeights(
        name, f"models/{name}.pt", file_hashes(path).git_blob_sha1, architecture, 260,
        "VGGFace2 face identification", "state dict", paper,
    )  # fmt: skip
    monkeypatch.setattr(known, "known_weights", lambda: {entry.git_blob_sha1: entry})


def titles(out):
    report = read_report(write_report(out).json)
    return {g.protocol: g.title for g in report.groups}


def test_a_paper_run_says_not_pretrained_or_names_the_papers_weights(small, tmp_path, monkeypatch):
    """Planned only (the paper's network is too big to train in a test): the titles and the
    records a planned run already has."""
    bare = make_plan(_spec(small, tmp_path / "bare"))
    for title in titles(tmp_path / "bare").values():
        assert "not pretrained" in title and "as in the paper" not in title
        assert "configuration differs" not in title  # the paper preset, per protocol
    batches = {
        j.identity.protocol: j.identity.training.config["effective_batch"] for j in bare.jobs
    }
    assert batches == {"bu3dfe-legacy": 128, "bu3dfe-full": 256}
    entry = bare.info.protocols["bu3dfe-full"]
    assert entry.train_defaults == entry.train_applied == {"effective_batch": 256}

    weights = face_state_dict("tf_efficientnet_b2", tmp_path / "state_vggface2_enet2.pt")
    register(monkeypatch, weights, "state_vggface2_enet2", "tf_efficientnet_b2", "named in text")
    planned = make_plan(_spec(small, tmp_path / "pre", environment=pretrained(weights)))
    for title in titles(tmp_path / "pre").values():
        assert (
            ", backbones pretrained as in the paper (state_vggface2_enet2, named in text)" in title
        )
        assert "not pretrained" not in title
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    record = json.loads((tmp_path / "pre" / "run.json").read_text())["weights"]
    assert record["known"] == "state_vggface2_enet2" and record["sha256"] == sha
    assert all(j.weights == record for j in planned.jobs)


def test_the_users_batch_wins_over_the_protocols_and_is_named(small, tmp_path):
    out = tmp_path / "run"
    planned = make_plan(_spec(small, out, overrides={"effective_batch": 64}))
    assert {j.identity.training.config["effective_batch"] for j in planned.jobs} == {64}
    assert planned.info.protocols["bu3dfe-full"].train_applied == {}
    got = titles(out)
    assert "configuration differs from the paper (effective_batch 64 vs 256)" in got["bu3dfe-full"]
    assert (
        "configuration differs from the paper (effective_batch 64 vs 128)" in got["bu3dfe-legacy"]
    )


def test_smaller_presets_keep_their_own_batch(small, tmp_path):
    planned = make_plan(_spec(small, tmp_path / "run", preset="tiny"))
    assert {j.identity.training.config["effective_batch"] for j in planned.jobs} == {16}
    report = read_report(write_report(tmp_path / "run").json)
    differs = {g.protocol: g.differs_from_paper for g in report.groups}
    assert differs["bu3dfe-full"]["effective_batch"] == [16, 256]
    assert differs["bu3dfe-legacy"]["effective_batch"] == [16, 128]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["protocols"]["bu3dfe-full"]["train_applied"] == {}


def test_every_result_records_the_weights_and_a_mismatch_needs_the_override(
    small, tmp_path, monkeypatch
):
    """tiny preset, its own backbone's face file: trained for one epoch, one fold."""
    weights = face_state_dict("test_efficientnet", tmp_path / "face.pt")
    register(monkeypatch, weights, "enet_b2_7", "tf_efficientnet_b2", "loaded by the code")
    spec = _spec(
        small,
        tmp_path / "run",
        protocols=("bu3dfe-legacy",),
        preset="tiny",
        overrides={"epochs": 1},
        environment=pretrained(weights),
    )
    with pytest.raises(WeightsError, match=r"enet_b2_7, made for tf_efficientnet_b2.*test_effic"):
        make_plan(spec)
    assert not (tmp_path / "run" / "run.json").exists()
    args = [
        "evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy",
        "--manifests", str(small / "m"), "--out", str(tmp_path / "run"), "--preset", "tiny",
        "--epochs", "1", "--repetitions", "1", "--max-folds", "1", "--device", "cpu",
        "--backbone-weights", str(weights), "--allow-architecture-mismatch",
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="not the architecture it was made for"):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    fold = json.loads((tmp_path / "run" / "bu3dfe-legacy/0/0/result.json").read_text())
    assert fold["weights"]["known"] == "enet_b2_7"
    assert fold["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert fold["weights"]["architecture_mismatch"] is True
    assert fold["weights"]["backbone"] == "test_efficientnet"
    title = titles(tmp_path / "run")["bu3dfe-legacy"]
    expected = "(enet_b2_7 loaded into test_efficientnet by --allow-architecture-mismatch)"
    assert f"pretrained differently from the paper {expected}" in title
    # and a safe run of the tiny preset (not one the table knows) is "unknown"
    monkeypatch.setattr(known, "known_weights", dict)
    planned = make_plan(spec.__class__(**{**spec.__dict__, "out": tmp_path / "other"}))
    assert planned.info.weights["known"] == "unknown"
    assert "not a known file" in titles(tmp_path / "other")["bu3dfe-legacy"]
