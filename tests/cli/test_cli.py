"""The real `fer3d-bench` entry point, run through click on hand-built trees."""

from click.testing import CliRunner

from fer3d_bench.cli import main

from handmade import bnt_bytes, bosphorus_scan, bu3dfe_scan


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_scan_prints_counts_exclusions_and_skipped_files(tmp_path):
    root = tmp_path / "bos"
    for name in ("bs000_N_N_0", "bs000_LFAU_12_0", "bs001_E_HAPPY_0", "bs001_CAU_A22A25_0"):
        bosphorus_scan(root / name[:5], name)
    (root / "bs001" / "bs001_N_N_0.bnt").write_bytes(bnt_bytes(name=b"bs001_N_N_0.png")[:-1])
    bosphorus_scan(root / "bs001", "bs001_N_N_1")
    (root / "bs001" / "bs001_N_N_1.bnt").write_bytes(bnt_bytes(name=b"bs001_N_N_1.png")[:-1])
    csv = tmp_path / "table.csv"
    result = run("scan", root, "--dataset", "bosphorus", "--csv", csv)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 samples from 2 subjects, 1 excluded, 2 files skipped" in out
    assert "happiness    2" in out and "neutral      1" in out
    assert "bosphorus:bs001" in out
    assert "1  combined action units" in out
    assert "bs001_N_N_0.bnt: bosphorus:bs001_N_N_0: no image file for this sample" in out
    assert "bs001_N_N_1.bnt: bosphorus:bs001_N_N_1: file truncated" in out
    assert csv.read_text().splitlines()[0].startswith("sample_id,dataset,subject,label")


def test_scan_of_a_missing_root_is_one_clear_line(tmp_path):
    result = run("scan", tmp_path / "absent", "--dataset", "bu3dfe")
    assert result.exit_code == 1
    assert "error: bu3dfe: dataset root" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_scan_of_a_root_without_samples_fails(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    result = run("scan", tmp_path, "--dataset", "bu3dfe")
    assert result.exit_code == 1
    assert "no usable bu3dfe samples" in result.output
    assert "junk.txt: name fits no BU-3DFE pattern" in result.output


def test_scan_with_label_map_override(tmp_path):
    bu3dfe_scan(tmp_path / "F0001", "F0001_AN01WH")
    bu3dfe_scan(tmp_path / "F0001", "F0001_HA01WH")
    override = tmp_path / "m.toml"
    override.write_text('[bu3dfe.codes]\nAN = "exclude"\n')
    result = run("scan", tmp_path, "--dataset", "bu3dfe", "--label-map", override)
    assert result.exit_code == 0
    assert "1 samples from 1 subjects, 1 excluded" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[bu3dfe.codes]\nAN = "rage"\n')
    result = run("scan", tmp_path, "--dataset", "bu3dfe", "--label-map", bad)
    assert result.exit_code == 1 and "'rage' is not a class" in result.output


def test_make_sample_exact_and_misaligned_options(tmp_path):
    import json

    sizes = ["--bu3dfe-subjects", 0, "--bosphorus-subjects", 1, "--cald3r-subjects", 0]
    sizes += ["--mend3s-subjects", 0, "--workers", 1]
    exact = run("make-sample", tmp_path / "exact", "--exact", *sizes)
    assert exact.exit_code == 0, exact.output
    truth = json.loads((tmp_path / "exact" / "ground_truth.json").read_text())
    assert truth["generator"]["config"]["exact"] is True and truth["irregularities"] is None
    assert {(e["width"], e["height"]) for e in truth["bosphorus"].values()} == {(360, 480)}
    assert all(e["lm2_gap_px_max"] == 0.0 for e in truth["bosphorus"].values())
    plain = run("make-sample", tmp_path / "plain", "--misaligned", 0, *sizes)
    assert plain.exit_code == 0, plain.output
    truth = json.loads((tmp_path / "plain" / "ground_truth.json").read_text())
    assert not any(e["planted"] for e in truth["bosphorus"].values())
    assert len({(e["width"], e["height"]) for e in truth["bosphorus"].values()}) > 1


def test_inspect_and_verify_of_a_file_that_is_not_hdf5_or_is_truncated_is_one_line(
    tiny_merged, tmp_path
):
    base, _, _ = tiny_merged
    merged = (base / "merged.h5").read_bytes()
    garbage, truncated = tmp_path / "garbage.h5", tmp_path / "truncated.h5"
    garbage.write_bytes(bytes(range(256)) * 64)
    truncated.write_bytes(merged[: len(merged) // 2])
    for path, problem in ((garbage, "not an HDF5 file"), (truncated, "truncated or damaged")):
        for command in ("inspect", "verify"):
            result = CliRunner().invoke(main, [command, str(path)])
            assert result.exit_code == 1, result.output
            assert result.output.startswith(f"error: {path}: {problem}")
            assert len(result.output.strip().splitlines()) == 1
            assert "Traceback" not in result.output
