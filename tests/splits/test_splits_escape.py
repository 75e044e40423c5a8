"""Names read from protocol and manifest files never become paths outside the folder given.

Each test is the attacker's move: a protocol file or `--protocol` argument that climbs out with
`../`, a protocol file named after another protocol, a manifest re-hashed after its name was
edited, a manifest folder that is a link elsewhere.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.errors import ConfigError, Fer3dError
from fer3d_bench.evaluation.plan import EvalSpec, plan
from fer3d_bench.io import OutsideFolder
from fer3d_bench.manifests import bu3dfe_catalogue, items_from_h5
from fer3d_bench.names import UnsafeName

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
PUBLISHED = Path(__file__).resolve().parents[2] / "data_manifests"


def invoke(*args):
    """The command line as a user runs it; an unexpected exception fails the test."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b""
        for p in folder.rglob("*")
    }


def protocol_file(folder: Path, stem: str, **fields) -> Path:
    """bu3dfe-full.toml with some fields set, saved as <folder>/<stem>.toml."""
    lines = [
        line
        for line in (PROTOCOLS / "bu3dfe-full.toml").read_text().splitlines()
        if line.split(" = ")[0] not in fields
    ]
    lines = [f"{key} = {json.dumps(value)}" for key, value in fields.items()] + lines
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_clear_line(result, *words):
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0, result.output
    for word in words:
        assert word in result.output


@pytest.mark.parametrize(
    "fields", [{"name": "../escape"}, {"name": "escape", "version": "../../1.0.0"}]
)
def test_generate_refuses_a_protocol_file_whose_name_climbs_out(tmp_path, fields):
    path = protocol_file(tmp_path / "downloaded", "escape", **fields)
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    before = snapshot(tmp_path)
    result = invoke("splits", "generate", "--protocol", path, "--naming-scheme", "--out", out)
    assert_one_clear_line(result, "is not allowed", str(path))
    assert snapshot(tmp_path) == before  # nothing beside --out, nothing in it either


def test_evaluate_refuses_a_protocol_file_whose_name_climbs_out(tiny_merged, tmp_path):
    base, _, _ = tiny_merged
    path = protocol_file(tmp_path / "downloaded", "escape", name="../escape")
    out = tmp_path / "runs" / "run"
    out.parent.mkdir()
    before = snapshot(tmp_path)
    result = invoke("evaluate", "--dataset", base / "merged.h5", "--protocol", path, "--out", out)
    assert_one_clear_line(result, "protocol name '../escape' is not allowed")
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("runs/run")}
    assert after == before  # nothing beside the run folder (runs/escape/0/0 once)


@pytest.mark.parametrize("argument", ["../x", "../../tmp/evil", "protocols/../x", "Bu3dfe-full"])
def test_a_protocol_argument_is_a_name_or_a_toml_file(tmp_path, argument):
    out = tmp_path / "out"  # ../../tmp/evil once read protocols/../../tmp/evil.toml
    result = invoke("splits", "generate", "--protocol", argument, "--naming-scheme", "--out", out)
    assert_one_clear_line(result, f"protocol {argument!r} is not allowed", "a path to a .toml")
    assert not out.exists()
    with pytest.raises(UnsafeName):
        sp.load_protocol(argument)


def test_evaluate_refuses_a_protocol_argument_that_climbs_out(tiny_merged, tmp_path):
    base, _, _ = tiny_merged
    result = invoke(
        "evaluate", "--dataset", base / "merged.h5", "--protocol", "../x", "--out", tmp_path / "r"
    )
    assert_one_clear_line(result, "protocol '../x' is not allowed")
    assert not (tmp_path / "r").exists()


def test_a_protocol_file_the_user_chose_is_read_by_its_path(tmp_path):
    path = protocol_file(tmp_path / "mine", "custom", name="custom")
    out = tmp_path / "out"
    result = invoke("splits", "generate", "--protocol", path, "--naming-scheme", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("custom 1.0.0: 2500 samples")
    assert sp.read_manifest(out / "custom" / "1.0.0.json").content["protocol"] == "custom"


def test_a_protocol_file_named_after_another_protocol_is_refused(tmp_path):
    path = protocol_file(tmp_path, "other")  # holds bu3dfe-full
    with pytest.raises(Fer3dError, match=r"named 'other' but holds protocol 'bu3dfe-full'"):
        sp.load_protocol(path)
    result = invoke("splits", "generate", "--protocol", path, "--naming-scheme", "--out", tmp_path)
    assert_one_clear_line(result, "'other'", "'bu3dfe-full'")


def test_evaluate_refuses_a_protocol_file_named_otherwise_before_anything(tiny_merged, tmp_path):
    """Once a KeyError: the run keyed the protocol by its name in one place, the file elsewhere."""
    base, _, _ = tiny_merged
    path = protocol_file(tmp_path / "mine", "mine")
    out = tmp_path / "run"
    result = invoke("evaluate", "--dataset", base / "merged.h5", "--protocol", path, "--out", out)
    assert_one_clear_line(result, "'mine'", "'bu3dfe-full'")
    assert not out.exists()


def test_evaluate_refuses_two_different_protocols_of_one_name(tiny_merged, tmp_path):
    base, _, _ = tiny_merged
    items = items_from_h5(base / "merged.h5")
    protocol = sp.load_protocol("bu3dfe-full")
    sp.write_manifest(sp.make_manifest(protocol, items, "t"), tmp_path / "m")
    other = protocol_file(tmp_path / "mine", "bu3dfe-full", test_fraction=0.5)
    spec = EvalSpec(
        dataset=base / "merged.h5",
        protocols=("bu3dfe-full", str(other)),
        out=tmp_path / "run",
        manifests=tmp_path / "m",
        preset="tiny",
    )
    with pytest.raises(ConfigError, match="different bu3dfe-full"):
        plan(spec)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "field, value",
    [("protocol", "../x"), ("protocol", "bu3dfe-full/../../x"), ("version", "1.0.0/../../x")],
)
def test_a_rehashed_manifest_whose_name_climbs_out_is_refused(tmp_path, field, value):
    content = json.loads((PUBLISHED / "bu3dfe-full/1.0.0.json").read_text())
    content[field] = value
    content["sha256"] = sp.content_hash(content)  # as anybody can
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UnsafeName, match=f"manifest {field} "):
        sp.read_manifest(path)
    assert_one_clear_line(invoke("splits", "show", path), "is not allowed")


def test_write_manifest_refuses_to_write_outside_its_folder(tmp_path):
    manifest = sp.make_manifest(sp.load_protocol("bu3dfe-full"), bu3dfe_catalogue(), "t")
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    forged = sp.Manifest(dict(manifest.content, protocol="../escape"))
    with pytest.raises(OutsideFolder):
        sp.write_manifest(forged, out)
    assert snapshot(tmp_path) == before
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "bu3dfe-full").symlink_to(elsewhere)  # the folder a manifest goes to links away
    with pytest.raises(OutsideFolder):
        sp.write_manifest(manifest, out)
    assert list(elsewhere.iterdir()) == [] and not (out / "SHA256SUMS").exists()
