"""build-dataset on the generated sample: contents, byte-identical rebuilds, atomicity, reader."""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from truth import planted as planted_ids

from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.build import BuildOptions, _Entry, _refuse_duplicates, build_dataset
from fer3d_bench.errors import DatasetNotFoundError, Fer3dError
from fer3d_bench.render.layout import output_paths
from fer3d_bench.render.options import RenderOptions

SIZE = 48


@pytest.fixture(scope="module")
def built(tiny_merged):
    return tiny_merged


def test_file_holds_every_usable_sample_with_provenance(built):
    base, roots, report = built
    assert report.left_out["bosphorus"] == {"failed": 0, "excluded": 7}
    with H5Dataset(base / "merged.h5") as data:
        assert len(data) == 25 + 14 + 7 + 7
        assert data.sample_ids == sorted(data.sample_ids)
        assert data.classes[data.by_id("bu3dfe:F0001_SU03").label] == "surprise"
        assert set(data.datasets) == {"bu3dfe", "bosphorus", "cald3r", "mend3s"}
        sample = data.by_id("bosphorus:bs000_LFAU_12_0")
        assert data.classes[sample.label] == "happiness" and sample.subject == "bosphorus:bs000"
        assert sample.rgb.shape == (SIZE, SIZE, 3) and sample.depth.dtype == np.uint16
        ok = next(i for i in data.indices(dataset="bu3dfe") if not data.flagged[i])
        sources = data.column("sources")[ok]
        assert set(sources) == {"mesh", "texture", "landmarks", "photo"}
        mesh = roots["bu3dfe"] / sources["mesh"]["path"]
        assert sources["mesh"]["sha256"] == hashlib.sha256(mesh.read_bytes()).hexdigest()
        alignment = data.column("alignment")[ok]
        assert alignment["method"] == "ortho-fit" and alignment["iou"] > 0.99
        intensity = data.column("intensity")
        assert intensity[data.index_of("bu3dfe:F0001_AN03")] == 3
        assert intensity[data.index_of("cald3r:F_001_0001_anger")] == -1
        attrs = data.attributes()
        assert attrs["schema_version"] == "1.2.0"
        assert json.loads(attrs["build_parameters"])["options"]["size"] == SIZE
        assert json.loads(attrs["depth_convention"])["step_mm"] == 0.0025
        assert attrs["fingerprint"] == report.fingerprint


def test_flagged_samples_are_kept_with_their_status_and_counted(built):
    """The planted misalignments are kept, flagged in a column of their own; nothing else is."""
    base, roots, report = built
    truth = json.loads((base / "sample" / "ground_truth.json").read_text())
    planted = {*planted_ids(truth, "bu3dfe"), *planted_ids(truth, "bosphorus")}
    assert planted
    with H5Dataset(base / "merged.h5") as data:
        flagged = {data.sample_ids[i] for i in np.flatnonzero(data.flagged)}
        assert flagged == planted
        assert set(data.statuses) == {"ok", "low-quality"}
        assert list(data.indices(status="low-quality")) == sorted(data.index_of(s) for s in planted)
        flags = dict(zip(data.sample_ids, data.flags, strict=True))
        for sample_id in planted:  # BU-3DFE: rotated photos, which neither outline nor texture fit
            bu = sample_id.startswith("bu3dfe")
            expected = "silhouette-iou;texture-agreement" if bu else "landmark-offset"
            assert flags[sample_id] == expected
        assert all(flags[s] == "" for s in data.sample_ids if s not in planted)
    bu, bos = report.flags["bu3dfe"], report.flags["bosphorus"]
    assert bu["flagged"] == sum(s.startswith("bu3dfe") for s in planted)
    assert bu["checks"] == {"silhouette-iou": bu["flagged"], "texture-agreement": bu["flagged"]}
    assert bos["flagged"] == sum(s.startswith("bosphorus") for s in planted)
    assert report.flags["cald3r"]["flagged"] == 0


def test_the_small_sample_flags_exactly_its_planted_scans(small):
    """Three subjects: a BU-3DFE photo turned against its mesh and one taken from another
    subject are planted; both are flagged (the swapped one by its texture alone), no other."""
    truth = json.loads((small / "sample" / "ground_truth.json").read_text())
    planted = planted_ids(truth, "bu3dfe")
    assert sorted(p["kind"] for p in planted.values()) == ["photo-rotated", "photo-swapped"]
    with H5Dataset(small / "merged.h5") as data:
        flags = {data.sample_ids[i]: data.flags[i] for i in np.flatnonzero(data.flagged)}
    assert set(flags) == set(planted)
    assert all("texture-agreement" in flags[s].split(";") for s in planted)


def test_pixels_equal_the_render_depth_output(built):
    base, _, _ = built
    with H5Dataset(base / "merged.h5") as data:
        for index in range(0, len(data), 5):
            sample = data[index]
            dataset = sample.sample_id.split(":")[0]
            folder = {"cald3r": "cald3r-mend3s", "mend3s": "cald3r-mend3s"}.get(dataset, dataset)
            paths = output_paths(base / "render" / folder, sample.sample_id)
            np.testing.assert_array_equal(sample.rgb, np.asarray(Image.open(paths["rgb"])))
            np.testing.assert_array_equal(sample.depth, np.asarray(Image.open(paths["depth"])))


def test_rebuilding_from_scratch_is_byte_identical(built, tmp_path):
    base, roots, report = built
    again = build_dataset(
        roots,
        tmp_path / "again.h5",
        BuildOptions(render=RenderOptions(size=SIZE)),
        render_dir=tmp_path / "fresh-render",  # everything rendered anew
        progress=False,
    )
    assert (tmp_path / "again.h5").read_bytes() == (base / "merged.h5").read_bytes()
    assert again.fingerprint == report.fingerprint


def test_reader_filters_and_errors(built, tmp_path):
    base, _, _ = built
    with H5Dataset(base / "merged.h5") as data:
        fear = data.indices(label="fear")
        assert len(fear) == 4 + 2 + 1 + 1
        assert all(data.classes[data[i].label] == "fear" for i in fear)
        assert len(data.indices(dataset="bu3dfe", subject="bu3dfe:F0001")) == 25
        assert len(data.indices(dataset="mend3s", label=3)) == 1
        assert data[-1].sample_id == data.sample_ids[-1]
        with pytest.raises(IndexError):
            data[len(data)]
        with pytest.raises(KeyError, match="bu3dfe:F9999_NE00"):
            data.by_id("bu3dfe:F9999_NE00")
    newer = tmp_path / "newer.h5"
    shutil.copy(base / "merged.h5", newer)
    with h5py.File(newer, "a") as h5:
        h5.attrs["schema_version"] = "2.0.0"
    with pytest.raises(Fer3dError, match="schema version 2.0.0"):
        H5Dataset(newer)


def test_interrupted_build_leaves_the_previous_file_intact(built, tmp_path):
    base, roots, _ = built
    target = tmp_path / "merged.h5"
    shutil.copy(base / "merged.h5", target)
    before = target.read_bytes()
    render = shutil.copytree(base / "render", tmp_path / "render")  # the killed build's, not ours
    paths = json.dumps({name: str(root) for name, root in roots.items()})
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        import fer3d_bench.dataset.build as build
        slow_load = build._load_pair
        def load(*args):
            time.sleep(0.2)
            return slow_load(*args)
        build._load_pair = load
        roots = {{k: Path(v) for k, v in {paths}.items()}}
        options = build.BuildOptions(render=build.RenderOptions(size={SIZE}))
        build.build_dataset(roots, Path({str(target)!r}), options,
                            render_dir=Path({str(render)!r}), progress=False)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while not list(tmp_path.glob(".merged.h5.tmp-*")) and time.time() < deadline:
        time.sleep(0.02)
    assert list(tmp_path.glob(".merged.h5.tmp-*")), "the build never started writing"
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert target.read_bytes() == before
    target.unlink()
    child = subprocess.Popen([sys.executable, "-c", script])
    while not list(tmp_path.glob(".merged.h5.tmp-*")) and time.time() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not target.exists()


def test_bad_roots_and_outputs(built, tmp_path):
    base, roots, _ = built
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        build_dataset({"bu3dfe": tmp_path / "nope"}, tmp_path / "x.h5", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no recognisable samples"):
        build_dataset({"bu3dfe": tmp_path / "empty"}, tmp_path / "x.h5", progress=False)
    with pytest.raises(Fer3dError, match="output folder .* does not exist"):
        build_dataset(roots, tmp_path / "missing" / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_duplicate_sample_ids_are_refused(tmp_path):
    record = type("R", (), {"sample_id": "bu3dfe:F0001_NE00"})
    entries = [_Entry(record, tmp_path / root, {}, Path(), Path(), {}) for root in ("a", "b")]
    with pytest.raises(Fer3dError, match="two sources yield the sample id bu3dfe:F0001_NE00"):
        _refuse_duplicates(entries)


def test_failed_samples_stop_the_build_unless_allowed(built, tmp_path):
    base, roots, _ = built
    root = tmp_path / "bu"
    shutil.copytree(roots["bu3dfe"], root)
    next(root.rglob("F0001_HA02*_F2D.bmp")).write_bytes(b"garbage")
    out = tmp_path / "m.h5"
    runner = CliRunner()
    args = ["build-dataset", "--bu3dfe", str(root), "--out", str(out), "--size", str(SIZE)]
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "1 samples could not be read or rendered" in result.output
    assert "bu3dfe:F0001_HA02: " in result.output and "image does not decode" in result.output
    assert not out.exists()
    result = runner.invoke(main, [*args, "--allow-failures"])
    assert result.exit_code == 0, result.output
    assert "left out 0 excluded, 1 failed" in result.output
    assert "left out (failed to render): bu3dfe:F0001_HA02: " in result.output
    assert "samples flagged low-quality and kept (silhouette-iou" in result.output
    assert "fingerprint" in result.output
    with H5Dataset(out) as data:
        assert len(data) == 24 and "bu3dfe:F0001_HA02" not in data.sample_ids


def test_inspect_prints_schema_and_writes_pictures(built, tmp_path):
    base, _, _ = built
    result = CliRunner().invoke(
        main, ["inspect", str(base / "merged.h5"), "--figures", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "schema_version: 1.2.0" in result.output
    assert "/rgb" in result.output and "chunks (1, 48, 48, 3), fletcher32" in result.output
    assert "bu3dfe" in result.output and "total" in result.output
    flagged = "bu3dfe: 2 of 25 samples flagged low-quality and kept (silhouette-iou 2, texture-"
    assert flagged + "agreement 2)" in result.output
    assert "cald3r: all 7 samples aligned within their bars" in result.output
    names = ["merged_contact.png", "merged_classes.png"]
    names += [f"merged_qa_{d}.png" for d in ("bosphorus", "bu3dfe")]
    for name in names:
        assert f"wrote {tmp_path / name}" in result.output
        with Image.open(tmp_path / name) as picture:
            assert picture.size[0] > 300
    # CalD3r & MenD3s are aligned by their capture: nothing ranks, so no QA sheet
    assert not list(tmp_path.glob("merged_qa_cald3r*")) and "merged_qa_mend3s" not in result.output


def test_a_changed_raw_file_is_rendered_again_and_the_build_matches_a_fresh_one(
    tiny_sample, tmp_path
):
    """Reuse is keyed on the raw files too: otherwise the file would record the new file's hash
    beside the old file's pixels, and the same inputs could give two different files."""
    _, roots = tiny_sample
    root = tmp_path / "bu"
    (root / "F0001").mkdir(parents=True)
    for path in (roots["bu3dfe"] / "F0001").glob("F0001_HA0[34]*"):
        shutil.copy(path, root / "F0001" / path.name)
    options, render = BuildOptions(render=RenderOptions(size=SIZE)), tmp_path / "render"
    build_dataset({"bu3dfe": root}, tmp_path / "a.h5", options, render_dir=render, progress=False)
    photo = next(root.glob("F0001/F0001_HA03*_F2D.bmp"))
    pixels = np.asarray(Image.open(photo))
    Image.fromarray(np.roll(pixels, (7, -5), axis=(0, 1))).save(photo, format="BMP")
    untouched = output_paths(render / "bu3dfe", "bu3dfe:F0001_HA04")["rgb"].stat().st_mtime_ns
    build_dataset({"bu3dfe": root}, tmp_path / "b.h5", options, render_dir=render, progress=False)
    fresh = tmp_path / "fresh.h5"
    build_dataset({"bu3dfe": root}, fresh, options, render_dir=tmp_path / "new", progress=False)
    assert (tmp_path / "b.h5").read_bytes() == fresh.read_bytes()
    assert (tmp_path / "a.h5").read_bytes() != fresh.read_bytes()
    assert output_paths(render / "bu3dfe", "bu3dfe:F0001_HA04")["rgb"].stat().st_mtime_ns == (
        untouched
    )  # the unchanged sample was reused
    with H5Dataset(tmp_path / "b.h5") as data:
        sources = data.column("sources")[data.index_of("bu3dfe:F0001_HA03")]
        assert sources["photo"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
        alignment = data.column("alignment")[data.index_of("bu3dfe:F0001_HA03")]
    with H5Dataset(tmp_path / "a.h5") as before:
        moved = before.column("alignment")[before.index_of("bu3dfe:F0001_HA03")]
    assert alignment["tx"] == pytest.approx(moved["tx"] - 5, abs=0.5)
    assert alignment["ty"] == pytest.approx(moved["ty"] + 7, abs=0.5)


def test_a_schema_1_0_file_still_reads_its_statuses(built, tmp_path):
    """Files written before /status existed keep the status in their alignment JSON."""
    base, _, _ = built
    old = tmp_path / "old.h5"
    shutil.copy(base / "merged.h5", old)
    with h5py.File(old, "a") as h5:
        del h5["status"], h5["flags"]
        h5.attrs["schema_version"] = "1.0.0"
    with H5Dataset(base / "merged.h5") as new, H5Dataset(old) as data:
        assert data.schema_version == "1.0.0"
        np.testing.assert_array_equal(data.statuses, new.statuses)
        np.testing.assert_array_equal(data.flags, new.flags)
        assert data.flagged.any()


def test_build_dataset_takes_every_render_option_and_reuses_a_render_made_with_them(
    tiny_sample, tmp_path
):
    """A render folder made by render-depth with other options than the defaults is reused by
    build-dataset given the same options, and rendered again (never silently mixed) otherwise."""
    _, roots = tiny_sample
    root = tmp_path / "bu"
    (root / "F0001").mkdir(parents=True)
    for path in (roots["bu3dfe"] / "F0001").glob("F0001_HA0[34]*"):
        shutil.copy(path, root / "F0001" / path.name)
    render = tmp_path / "render"
    render.mkdir()
    chosen = ["--size", SIZE, "--margin", 0.2, "--backend", "open3d", "--min-iou", 0.9]
    chosen = [str(c) for c in chosen]
    made = CliRunner().invoke(
        main,
        ["render-depth", str(root), "--dataset", "bu3dfe", "--out", str(render / "bu3dfe")]
        + chosen,
    )
    assert made.exit_code == 0, made.output
    rgb = output_paths(render / "bu3dfe", "bu3dfe:F0001_HA04")["rgb"]
    stamp = rgb.stat().st_mtime_ns
    args = ["build-dataset", "--bu3dfe", str(root), "--render-dir", str(render)]
    built = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "same.h5"), *chosen])
    assert built.exit_code == 0, built.output
    assert rgb.stat().st_mtime_ns == stamp  # reused: rendered with exactly these options
    with H5Dataset(tmp_path / "same.h5") as data:
        recorded = json.loads(data.attributes()["build_parameters"])["options"]
    assert (recorded["margin"], recorded["backend"], recorded["min_iou"]) == (0.2, "open3d", 0.9)
    other = CliRunner().invoke(
        main, [*args, "--out", str(tmp_path / "other.h5"), "--size", str(SIZE)]
    )
    assert other.exit_code == 0, other.output
    assert rgb.stat().st_mtime_ns != stamp  # default margin and backend: rendered again
