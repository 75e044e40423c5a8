"""Provenance (issue 25, class 7): `weights import` writes the same bytes for the same input,
as an ordinary file, never over an existing one unasked; the identity a safetensors file's
metadata claims counts only where its tensors verify it, so a file of zeros naming enet_b2_7
is never recorded as the paper's weights."""

import json
import os
import struct
from pathlib import Path

import pytest
import timm
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from fer3d_bench.cli import main
from fer3d_bench.report.build import weights_notes
from fer3d_bench.weights import known
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.known import (
    KnownWeights,
    file_hashes,
    identify,
    refuse_other_architecture,
    safetensors_metadata,
    tensors_sha256,
    weights_record,
)

# what a run records of a known file, before this change and after (a verified import)
RECORD_KEYS = {
    "pretrained", "file", "sha256", "known", "trained_on", "paper", "backbone",
    "architecture_mismatch", "imported_from_sha256",
}  # fmt: skip


@pytest.fixture(scope="module")
def whole_model(tmp_path_factory) -> Path:
    """A tiny timm model saved whole (a pickle of its classes, as HSEmotion's files are)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("source") / "emotions.pt"
    torch.save(timm.create_model("test_efficientnet", pretrained=False, num_classes=7), path)
    return path


def import_cli(source: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["weights", "import", str(source), "--out", str(out), *extra])


def as_enet_b2_7(monkeypatch, path: Path) -> KnownWeights:
    """Make `path` the known enet_b2_7 (by its hash), as the real file would be."""
    entry = KnownWeights(
        "enet_b2_7", "models/affectnet_emotions/enet_b2_7.pt", file_hashes(path).git_blob_sha1,
        "tf_efficientnet_b2", 260, "VGGFace2, then AffectNet 7 emotions", "whole-model pickle",
        "loaded by the paper's code",
    )  # fmt: skip
    monkeypatch.setattr(known, "known_weights", lambda: {entry.git_blob_sha1: entry})
    return entry


def test_the_same_input_gives_the_same_bytes_and_the_hash_runs_record(whole_model, tmp_path):
    previous = os.umask(0o022)
    try:
        first = import_cli(whole_model, tmp_path / "a.safetensors")
        second = import_cli(whole_model, tmp_path / "b.safetensors")
    finally:
        os.umask(previous)
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert a.read_bytes() == b.read_bytes()
    assert (a.stat().st_mode & 0o777) == 0o644  # an ordinary file, as the umask makes it
    sha256 = file_hashes(a).sha256
    assert f"sha256 {sha256}" in first.output  # what the import prints...
    inspected = CliRunner().invoke(main, ["weights", "inspect", str(a)])
    assert inspected.exit_code == 0, inspected.output
    assert f"sha256        {sha256}" in inspected.output  # ...what inspect prints...
    assert weights_record(a, "test_efficientnet")["sha256"] == sha256  # ...and a run records
    length = struct.unpack("<Q", a.read_bytes()[:8])[0]
    header = json.loads(a.read_bytes()[8 : 8 + length])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    assert header["__metadata__"]["tensors_sha256"] == tensors_sha256(a)
    tensors = load_file(a)  # safetensors itself reads what we wrote
    expected = torch.load(whole_model, weights_only=False).state_dict()
    assert tensors.keys() == {k for k in expected if not k.startswith("classifier.")}
    assert all(torch.equal(tensors[k], expected[k]) for k in tensors)


def test_an_existing_out_is_refused_unless_forced(whole_model, tmp_path):
    out = tmp_path / "backbone.safetensors"
    out.write_bytes(b"keep me")
    refused = import_cli(whole_model, out)
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"error: {out}: already exists; pass --force to replace it"
    ]
    assert out.read_bytes() == b"keep me" and sorted(tmp_path.iterdir()) == [out]
    forced = import_cli(whole_model, out, "--force")
    assert forced.exit_code == 0, forced.output
    assert load_file(out) and sorted(tmp_path.iterdir()) == [out]


def test_zeros_that_claim_to_be_the_papers_weights_are_not_recorded_as_them(tmp_path):
    model = timm.create_model("tf_efficientnet_b2", pretrained=False, num_classes=0)
    zeros = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    forged = tmp_path / "enet_b2_7.safetensors"
    claim = {"known": "enet_b2_7", "source_file": "enet_b2_7.pt", "source_sha256": "0" * 64}
    save_file(zeros, str(forged), metadata=claim)
    record = weights_record(forged, "tf_efficientnet_b2")
    assert record["known"] == "unknown" and record["paper"] == "" and record["trained_on"] == ""
    assert record["claimed"].startswith("enet_b2_7, not verified (no tensor hash recorded")
    problem, paper_title = weights_notes(record)
    assert paper_title is None and "not a known file" in problem
    inspected = CliRunner().invoke(main, ["weights", "inspect", str(forged)])
    assert inspected.exit_code == 0, inspected.output
    assert "identity: enet_b2_7 claimed, not verified (no tensor hash" in inspected.output
    # a forger who writes some hash gains nothing: the tensors must hash to it
    save_file(zeros, str(forged), metadata=claim | {"tensors_sha256": "1" * 64})
    record = weights_record(forged, "tf_efficientnet_b2")
    assert record["known"] == "unknown"
    assert "its tensors differ from the hash recorded at import" in record["claimed"]
    with pytest.raises(WeightsError, match=r"enet_b2_7 \(claimed, not verified\)"):
        refuse_other_architecture(forged, "test_efficientnet")  # still refused elsewhere


def test_a_verified_import_is_the_known_file_until_its_tensors_change(
    whole_model, tmp_path, monkeypatch
):
    entry = as_enet_b2_7(monkeypatch, whole_model)
    out = tmp_path / "backbone.safetensors"
    assert import_cli(whole_model, out).exit_code == 0
    assert safetensors_metadata(out)["known"] == "enet_b2_7"
    assert identify(out) == known.Identity(entry, True)
    record = weights_record(out, "tf_efficientnet_b2")
    assert set(record) == RECORD_KEYS  # a verified file's record is what it always was
    assert (record["known"], record["paper"]) == ("enet_b2_7", "loaded by the paper's code")
    assert weights_notes(record)[1] == "backbones pretrained as in the paper " + (
        "(enet_b2_7, loaded by the paper's code)"
    )
    inspected = CliRunner().invoke(main, ["weights", "inspect", str(out)])
    assert "identity: enet_b2_7, verified" in inspected.output
    data = bytearray(out.read_bytes())
    data[-1] ^= 0xFF  # one byte of one tensor, the metadata untouched
    out.write_bytes(bytes(data))
    assert identify(out).verified is False
    record = weights_record(out, "tf_efficientnet_b2")
    assert record["known"] == "unknown" and record["paper"] == ""
    assert record["claimed"] == (
        "enet_b2_7, not verified (its tensors differ from the hash recorded at import)"
    )


def test_a_damaged_safetensors_header_is_a_weights_error(tmp_path):
    for name, header in [
        ("deep", b"[" * 100_000 + b"]" * 100_000),
        ("offsets", json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 99]}})),
        ("types", json.dumps({"w": {"dtype": "F32", "shape": "x", "data_offsets": 5}})),
    ]:
        header = header.encode() if isinstance(header, str) else header
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
        with pytest.raises(WeightsError, match="damaged safetensors file") as raised:
            tensors_sha256(path)
        assert raised.value.path == path
