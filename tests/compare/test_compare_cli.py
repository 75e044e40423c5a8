"""The compare command end to end on two run folders over the published bu3dfe-legacy
manifest: the table, the fold sizes read from the manifest, the JSON, and the same numbers
for the same seed."""

import hashlib
import json

import pytest
from click.testing import CliRunner
from compare_folders import write_folder

from fer3d_bench.cli.compare import compare
from fer3d_bench.splits import MANIFESTS_DIR
from fer3d_bench.splits.manifest import read_manifest

MANIFEST = MANIFESTS_DIR / "bu3dfe-legacy" / "1.0.0.json"
POSITIONS = [(rep, fold) for rep in range(2) for fold in range(3)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of 2 repetitions x 3 folds; A right on about 70% of the samples, B on about
    80%, chosen by a hash of sample and repetition (deterministic, different in every fold)."""
    manifest = read_manifest(MANIFEST)
    samples = manifest.samples()
    root = tmp_path_factory.mktemp("compare")
    made, hits = [], []
    for name, share in (("a", 7), ("b", 8)):
        folds, right, total = {}, 0, 0
        for rep, fold in POSITIONS:
            tested = sorted(manifest.test_samples(rep, fold))
            folds[(rep, fold)] = {}
            for sample in tested:
                true = samples[sample].label
                ok = int(hashlib.sha256(f"{sample}/{rep}".encode()).hexdigest(), 16) % 10 < share
                wrong = next(c for c in manifest.classes if c != true)
                folds[(rep, fold)][sample] = {"true": true, "pred": true if ok else wrong}
                right, total = right + ok, total + 1
        common = {"manifest": str(MANIFEST), "manifest_sha256": manifest.sha256}
        made.append(write_folder(root / name, folds, classes=manifest.classes, **common))
        hits.append(right / total)
    return made, hits


def test_compare_end_to_end(folders, tmp_path):
    (a, b), (accuracy_a, accuracy_b) = folders
    out = tmp_path / "deep" / "comparison.json"
    args = [str(a), str(b), "--resamples", "1000", "--seed", "3", "--json", str(out)]
    result = CliRunner().invoke(compare, args)
    assert result.exit_code == 0, result.output
    text = result.output
    # every fold holds 72 of the 720 samples: 72 / 648
    assert f"n_test/n_train 0.1111 from manifest {MANIFEST}" in text
    assert "bu3dfe-legacy: kfold, 6 folds in common (2 repetitions)" in text
    assert f"{100 * accuracy_a:.2f}%" in text and f"{100 * accuracy_b:.2f}%" in text
    assert f"{100 * (accuracy_b - accuracy_a):+.2f} pp [" in text
    assert "1,000 resamples of the test subjects, seed 3" in text
    assert "Nadeau and Bengio's corrected resampled t-test" in " ".join(text.split())
    saved = json.loads(out.read_text())
    assert saved["schema"] == "fer3d-bench/comparison/1"
    assert saved["folders"] == [str(a), str(b)]
    (row,) = saved["rows"]
    assert row["accuracy"]["n"] == 6 and row["accuracy"]["df"] == 5
    assert row["accuracy"]["ratio"] == pytest.approx(72 / 648)
    manifest = read_manifest(MANIFEST)
    tested = set().union(*(manifest.test_samples(rep, fold) for rep, fold in POSITIONS))
    subjects = {manifest.samples()[sample].subject for sample in tested}
    assert row["bootstrap"]["subjects"] == len(subjects) and len(subjects) > 20
    assert row["bootstrap"]["samples"] == len(tested) == 12 * len(subjects)
    assert row["bootstrap"]["low"] < row["bootstrap"]["estimate"] < row["bootstrap"]["high"]
    again = CliRunner().invoke(compare, args[:-2])
    assert again.exit_code == 0 and again.output == text.rsplit("comparison: ", 1)[0]
    other_seed = CliRunner().invoke(compare, [str(a), str(b), "--resamples", "1000"])
    assert other_seed.output != again.output


def test_compare_refuses_a_variant_count_other_than_one_per_folder(folders):
    (a, b), _ = folders
    result = CliRunner().invoke(compare, [str(a), str(b), "--variant", "full"])
    assert result.exit_code != 0
    assert "1 variants named for 2 folders" in str(result.exception)
