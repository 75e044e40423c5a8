"""Protocols and manifests: published BU-3DFE manifests, every protocol on the sample, bad input."""

import hashlib
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.errors import Fer3dError
from fer3d_bench.manifests import bu3dfe_catalogue
from fer3d_bench.train.config import protocol_train

PUBLISHED = Path(__file__).resolve().parents[2] / "data_manifests"
# Changing a published manifest needs a version bump: then add the new file's hash here.
PINNED = {
    "bu3dfe-legacy/1.0.0.json": "caa4772dd5d0eb9cf7091d1c8c2e9b1be002716df1eb48390ddc3b416b78bbef",
    "bu3dfe-full/1.0.0.json": "46190a0e2856a33ca4e3eb52e9d8fb9b6e196b68b484010eefc932cabd490873",
}
PROTOCOLS = ("bu3dfe-legacy", "bu3dfe-full", "cald3r-mend3s", "merged", "cross-dataset")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def folds_of(content, repetition):
    return {
        s: k
        for k, members in enumerate(content["repetitions"][repetition]["subjects"])
        for s in members
    }


def check_partition(content):
    """No subject on two sides of a fold; every sample tested exactly once per repetition."""
    samples = content["samples"]
    subjects = {info["subject"] for info in samples.values()}
    for rep in content["repetitions"]:
        members = [s for fold in rep["subjects"] for s in fold]
        assert len(members) == len(set(members)) and set(members) == subjects
        tested = [
            i
            for i, info in samples.items()
            for fold in rep["subjects"][:]
            if info["subject"] in fold
        ]
        assert len(tested) == len(samples)  # each sample sits in exactly one fold
        for k, fold in enumerate(rep["subjects"]):
            counted = sum(rep["counts"][k].values())
            assert counted == sum(1 for info in samples.values() if info["subject"] in fold)


@pytest.mark.parametrize("path, digest", sorted(PINNED.items()))
def test_published_manifests_are_pinned_and_listed(path, digest):
    data = (PUBLISHED / path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    sums = dict(
        line.split("  ")[::-1]
        for line in (PUBLISHED / "SHA256SUMS").read_text().split("\n")
        if line
    )
    for name in (path, path.replace(".json", ".csv")):
        assert sums[name] == hashlib.sha256((PUBLISHED / name).read_bytes()).hexdigest()


def test_published_manifests_regenerate_identically(tmp_path):
    result = run(
        "splits",
        "generate",
        "--protocol",
        "bu3dfe-legacy",
        "--protocol",
        "bu3dfe-full",
        "--naming-scheme",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    for path in PINNED:
        assert (tmp_path / path).read_bytes() == (PUBLISHED / path).read_bytes()


def test_legacy_manifest_counts_and_subjects():
    content = sp.read_manifest(PUBLISHED / "bu3dfe-legacy/1.0.0.json").content
    assert len(content["samples"]) == 720 and len(content["repetitions"]) == 100
    subjects = {info["subject"] for info in content["samples"].values()}
    assert len(subjects) == 60
    assert {i.split("_")[1][2:] for i in content["samples"]} == {"03", "04"}
    assert "neutral" not in {info["label"] for info in content["samples"].values()}
    check_partition(content)
    for rep in content["repetitions"]:
        assert [sum(c.values()) for c in rep["counts"]] == [72] * 10
    assert folds_of(content, 0) != folds_of(content, 1)  # each repetition deals anew
    full = sp.read_manifest(PUBLISHED / "bu3dfe-full/1.0.0.json").content
    assert len(full["samples"]) == 2500
    check_partition(full)
    assert all(sum(c.values()) == 500 for c in full["repetitions"][0]["counts"])


def test_assignment_is_reimplementable_in_a_few_lines():
    protocol = sp.load_protocol("bu3dfe-full")
    items = bu3dfe_catalogue()
    content = sp.make_manifest(protocol, items, "test").content

    # The README's algorithm, written again here without the package's helpers:
    def key(subject):
        text = f"bu3dfe-full|1|0|0|{subject}"
        return hashlib.sha256(text.encode()).hexdigest()

    expected, counter = {}, 0
    for sex in ("F", "M"):  # strata in sorted order
        for subject in sorted(
            (f"bu3dfe:{s}" for s in {i.subject[7:] for i in items} if s[0] == sex), key=key
        ):
            expected[subject] = counter % 5
            counter += 1
    assert folds_of(content, 0) == expected


def test_generation_ignores_listing_order():
    protocol = sp.load_protocol("bu3dfe-legacy")
    items = bu3dfe_catalogue()
    shuffled = items[:]
    random.Random(4).shuffle(shuffled)
    assert (
        sp.make_manifest(protocol, shuffled, "x").content
        == sp.make_manifest(protocol, items, "x").content
    )


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_on_the_sample(tiny_merged, tmp_path, name):
    base, _, _ = tiny_merged
    result = run(
        "splits", "generate", "--protocol", name, "--dataset", base / "merged.h5", "--out", tmp_path
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / name / "1.0.0.json"
    content = sp.read_manifest(path).content
    check_partition(content)
    text = path.read_text()
    assert str(base) not in text and "/tmp" not in text  # no paths of this machine
    if name == "cross-dataset":
        train, test = content["repetitions"][0]["subjects"]
        assert {s.split(":")[0] for s in train} == {"bu3dfe", "bosphorus"}
        assert {s.split(":")[0] for s in test} == {"cald3r", "mend3s"}
    if name == "merged":
        train, test = content["repetitions"][0]["subjects"]
        assert train and not set(train) & set(test)  # one subject per dataset: all train
    again = run(
        "splits",
        "generate",
        "--protocol",
        name,
        "--dataset",
        base / "merged.h5",
        "--out",
        tmp_path / "again",
    )
    assert again.exit_code == 0
    assert (tmp_path / "again" / name / "1.0.0.json").read_bytes() == path.read_bytes()
    verified = run("splits", "verify", "--manifest", path, "--dataset", base / "merged.h5")
    assert verified.exit_code == 0 and "ok: the dataset matches" in verified.output
    shown = run("splits", "show", path)
    assert shown.exit_code == 0 and "subjects" in shown.output


def test_generate_from_a_root_equals_generate_from_the_h5(tiny_merged, tmp_path):
    base, roots, _ = tiny_merged
    run(
        "splits",
        "generate",
        "--protocol",
        "bu3dfe-full",
        "--dataset",
        roots["bu3dfe"],
        "--out",
        tmp_path / "root",
    )
    run(
        "splits",
        "generate",
        "--protocol",
        "bu3dfe-full",
        "--dataset",
        base / "merged.h5",
        "--out",
        tmp_path / "h5",
    )
    a = json.loads((tmp_path / "root/bu3dfe-full/1.0.0.json").read_text())
    b = json.loads((tmp_path / "h5/bu3dfe-full/1.0.0.json").read_text())
    assert a["samples"] == b["samples"] and a["repetitions"] == b["repetitions"]


def test_verify_reports_missing_samples_against_the_published_manifest(tiny_merged):
    base, _, _ = tiny_merged
    result = run(
        "splits",
        "verify",
        "--manifest",
        PUBLISHED / "bu3dfe-full/1.0.0.json",
        "--dataset",
        base / "merged.h5",
    )
    assert result.exit_code == 1
    assert "2475 missing" in result.output  # the sample has 1 of the 100 subjects
    assert "does not match the manifest" in result.output


def test_hand_edited_and_newer_manifests_are_refused(tmp_path):
    content = json.loads((PUBLISHED / "bu3dfe-full/1.0.0.json").read_text())
    edited = dict(content)
    edited["samples"] = dict(content["samples"])
    edited["samples"]["bu3dfe:F0001_AN01"] = {"subject": "bu3dfe:F0001", "label": "fear"}
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with pytest.raises(sp.ManifestError, match="edited by hand"):
        sp.read_manifest(tmp_path / "edited.json")
    newer = dict(content, version="2.0.0")
    newer["sha256"] = sp.content_hash(newer)
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    with pytest.raises(sp.ManifestError, match="newer than this fer3d-bench"):
        sp.read_manifest(tmp_path / "newer.json")
    result = run("splits", "show", tmp_path / "edited.json")
    assert result.exit_code == 1 and "edited by hand" in result.output


def test_label_disagreement_is_reported(tiny_merged, tmp_path):
    base, _, _ = tiny_merged
    run(
        "splits",
        "generate",
        "--protocol",
        "bu3dfe-full",
        "--dataset",
        base / "merged.h5",
        "--out",
        tmp_path,
    )
    path = tmp_path / "bu3dfe-full/1.0.0.json"
    content = json.loads(path.read_text())
    content["samples"]["bu3dfe:F0001_AN01"]["label"] = "fear"
    content["samples"].pop("bu3dfe:F0001_SU04")
    content["sha256"] = sp.content_hash(content)
    path.write_text(json.dumps(content))
    result = run("splits", "verify", "--manifest", path, "--dataset", base / "merged.h5")
    assert result.exit_code == 1
    assert "label differs: bu3dfe:F0001_AN01: manifest fear, dataset anger" in result.output
    assert "1 extra: bu3dfe:F0001_SU04" in result.output


@pytest.mark.parametrize("bad", ["bu3dfe:../F0001_AN01", "bu3dfe:a/b"])
def test_unsafe_sample_ids_are_refused(bad):
    protocol = sp.load_protocol("bu3dfe-full")
    items = [sp.Item(bad, "bu3dfe:F0001", "bu3dfe", "anger", 1, "F")]
    with pytest.raises(sp.ManifestError, match="path separator"):
        sp.make_manifest(protocol, items, "x")


def test_unknown_protocol(tmp_path):
    result = run("splits", "generate", "--protocol", "nope", "--naming-scheme", "--out", tmp_path)
    assert result.exit_code == 1 and "no such protocol" in result.output


def test_holdout_is_stratified_by_dataset_and_folds_balance_strata():
    items = [
        sp.Item(f"{d}:{d[0]}{s:02d}_{c}", f"{d}:{s:02d}", d, c, -1, "FM"[s % 2])
        for d, n in (("bu3dfe", 10), ("bosphorus", 5), ("cald3r", 20), ("mend3s", 15))
        for s in range(n)
        for c in ("anger", "neutral")
    ]
    content = sp.make_manifest(sp.load_protocol("merged"), items, "synthetic").content
    train, test = content["repetitions"][0]["subjects"]
    per_dataset = {
        d: sum(1 for s in test if s.startswith(d + ":"))
        for d in ("bu3dfe", "bosphorus", "cald3r", "mend3s")
    }
    assert per_dataset == {"bu3dfe": 2, "bosphorus": 1, "cald3r": 4, "mend3s": 3}
    cm = sp.make_manifest(sp.load_protocol("cald3r-mend3s"), items, "synthetic").content
    for fold in cm["repetitions"][0]["subjects"]:  # 35 subjects in 5 folds, balanced by dataset
        assert len(fold) == 7
        assert sum(1 for s in fold if s.startswith("cald3r:")) == 4


def test_a_protocols_train_table_is_checked_and_stays_out_of_its_manifest(tmp_path):
    """bu3dfe-full carries the paper's batch for it; a table with a key no config has, or that
    is not a table, is refused naming the file; the manifest of a protocol with a table is the
    same as without (training settings are not part of a split)."""
    full = sp.load_protocol("bu3dfe-full")
    assert protocol_train(full) == {"effective_batch": 256}
    text = (sp.PROTOCOLS_DIR / "bu3dfe-full.toml").read_text()
    for table, problem in [
        (
            "[train]\neffective_bach = 256\n",
            r"\[train\]: unknown configuration key.*effective_bach",
        ),
        ("train = 256\n", r"\[train\] must be a table"),
    ]:
        path = tmp_path / "bad" / "bu3dfe-full.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text.split("[train]")[0].replace("\n# The paper", "\n#") + table)
        with pytest.raises(Fer3dError, match=str(path).replace(".", r"\.") + ".*" + problem):
            protocol_train(sp.load_protocol(path))  # checked where training reads it
    plain = tmp_path / "plain" / "bu3dfe-full.toml"
    plain.parent.mkdir()
    plain.write_text(text.split("[train]")[0] + "\n[train.model]\ndropout = 0.2\n")
    nested = sp.load_protocol(plain)
    assert protocol_train(nested) == {"model.dropout": 0.2}
    items = bu3dfe_catalogue()
    assert (
        sp.make_manifest(full, items, "t").content == sp.make_manifest(nested, items, "t").content
    )
