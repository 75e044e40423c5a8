"""A manifest re-hashed after an edit still has to keep its promises, or verify refuses it.

Anybody can recompute a manifest's sha256 (`splits.content_hash`), so each test edits a manifest
as an attacker could, re-hashes it, and expects `verify` to name what no longer holds: a subject
on both sides of a split, a sample given another person, counts that are not its samples'.
"""

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.errors import ManifestMismatch
from fer3d_bench.manifests import CheckedManifest, bu3dfe_catalogue, items_from_h5
from fer3d_bench.sources import subject_of

PUBLISHED = Path(__file__).resolve().parents[2] / "data_manifests"
CATALOGUE = bu3dfe_catalogue()
FULL = sp.load_protocol("bu3dfe-full")
GENERATED = sp.make_manifest(FULL, CATALOGUE, "BU-3DFE naming scheme").content


def edited(change) -> dict:
    """A copy of the generated bu3dfe-full manifest, changed, then re-hashed as anybody can."""
    content = copy.deepcopy(GENERATED)
    change(content)
    content["sha256"] = sp.content_hash(content)
    return content


def verified(content: dict, tmp_path: Path, protocol=FULL, items=CATALOGUE) -> sp.Verification:
    """What verify says, after the manifest went through a file and read_manifest like any."""
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(content))
    return sp.verify(sp.read_manifest(path), protocol, items)


def fold_of(content, subject, repetition=0):
    groups = content["repetitions"][repetition]["subjects"]
    return next(k for k, members in enumerate(groups) if subject in members)


def failing(result: sp.Verification) -> str:
    assert not result.ok
    return "\n".join(result.describe(limit=100))


def test_the_generated_manifest_verifies(tmp_path):
    result = verified(edited(lambda content: None), tmp_path)
    assert result.ok and result.describe() == []


@pytest.mark.parametrize("name", ["bu3dfe-legacy", "bu3dfe-full"])
def test_the_published_manifests_keep_every_invariant(name):
    manifest = sp.read_manifest(PUBLISHED / name / "1.0.0.json")
    protocol = sp.load_protocol(name)
    assert manifest.broken_invariants(protocol) == []
    assert sp.verify(manifest, protocol, CATALOGUE).ok


def test_a_sample_given_a_subject_of_another_fold_is_named(tmp_path):
    sample = "bu3dfe:F0001_AN01"
    other = next(
        s
        for s in sorted({i.subject for i in CATALOGUE})
        if fold_of(GENERATED, s) != fold_of(GENERATED, "bu3dfe:F0001")
    )

    def give_away(content):
        content["samples"][sample]["subject"] = other  # F0001 now trains on its own test scan

    content = edited(give_away)
    assert sp.Manifest(content).broken_invariants(FULL)[0] == (
        f"sample {sample}: subject {other}, but its id names bu3dfe:F0001"
    )
    text = failing(verified(content, tmp_path))
    assert f"subject differs: {sample}: manifest {other}, dataset bu3dfe:F0001" in text
    assert f"sample {sample}: subject {other}" in text
    before, after = fold_of(GENERATED, "bu3dfe:F0001"), fold_of(GENERATED, other)
    assert f"repetition 0, fold {before}: stated counts anger" in text  # now one too many
    assert f"repetition 0, fold {after}: stated counts anger" in text


def test_a_stale_class_count_is_named_with_its_fold(tmp_path):
    def miscount(content):
        content["repetitions"][0]["counts"][2]["fear"] += 1

    stated = GENERATED["repetitions"][0]["counts"][2]["fear"]
    text = failing(verified(edited(miscount), tmp_path))
    assert f"repetition 0, fold 2: stated counts fear {stated + 1} (its samples: {stated})" in text


def test_a_subject_listed_in_a_second_fold_is_named(tmp_path):
    subject = GENERATED["repetitions"][0]["subjects"][0][0]

    def list_twice(content):
        content["repetitions"][0]["subjects"][3].append(subject)

    text = failing(verified(edited(list_twice), tmp_path))
    assert f"repetition 0: subject {subject} is in fold 0 and fold 3" in text


def test_a_subject_in_no_fold_is_named(tmp_path):
    subject = GENERATED["repetitions"][0]["subjects"][1][0]

    def drop(content):
        content["repetitions"][0]["subjects"][1].remove(subject)

    text = failing(verified(edited(drop), tmp_path))
    assert f"repetition 0: subject {subject} (of {subject}_AN01) is in no fold" in text


def test_classes_and_labels_are_the_protocols(tmp_path):
    def relabel(content):
        content["classes"] = content["classes"][:-1]
        content["samples"]["bu3dfe:M0044_SU04"]["label"] = "contempt"

    text = failing(verified(edited(relabel), tmp_path))
    assert "classes ['anger', 'disgust', 'fear', 'happiness', 'neutral', 'sadness'] is not" in text
    assert "sample bu3dfe:M0044_SU04: label 'contempt' is not a class" in text


def test_a_holdout_subject_on_both_sides_is_named():
    protocol = sp.load_protocol("merged")
    content = sp.make_manifest(protocol, CATALOGUE, "naming scheme").content
    train, test = content["repetitions"][0]["subjects"]
    assert len(test) == 20 and not set(train) & set(test)
    train.append(test[0])
    problems = sp.Manifest(content).broken_invariants(protocol)
    assert f"repetition 0: subject {test[0]} is in train and test" in problems


@pytest.mark.parametrize(
    "sample_id, subject",
    [
        ("bu3dfe:F0001_AN04", "bu3dfe:F0001"),
        ("bosphorus:bs000_LFAU_12_0", "bosphorus:bs000"),
        ("cald3r:F_001_0001_anger", "cald3r:001"),
        ("mend3s:M_07_0003_happiness", "mend3s:07"),
        ("cald3r:F_001_0001_anger_x", None),  # not one of the dataset's ids: no subject
        ("bu3dfe:b00_anger", None),
        ("other:F0001_AN04", None),
    ],
)
def test_a_sample_id_names_its_subject(sample_id, subject):
    assert subject_of(sample_id) == subject


def test_verify_and_evaluate_refuse_a_manifest_that_leaks(tiny_merged, tmp_path):
    """cross-dataset tests on CalD3r and MenD3s: a CalD3r scan handed to a BU-3DFE subject
    would be trained on, with every hash in order."""
    base, _, _ = tiny_merged
    items = items_from_h5(base / "merged.h5")
    protocol = sp.load_protocol("cross-dataset")
    sp.write_manifest(sp.make_manifest(protocol, items, "t"), tmp_path / "m")
    path = tmp_path / "m" / "cross-dataset" / "1.0.0.json"
    content = json.loads(path.read_text())
    sample = sorted(s for s in content["samples"] if s.startswith("cald3r:"))[0]
    truth = content["samples"][sample]["subject"]
    train_subject = content["repetitions"][0]["subjects"][0][0]
    content["samples"][sample]["subject"] = train_subject
    content["sha256"] = sp.content_hash(content)
    path.write_text(json.dumps(content))

    args = ["splits", "verify", "--manifest", str(path), "--dataset", str(base / "merged.h5")]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"subject differs: {sample}: manifest {train_subject}, dataset {truth}" in result.output
    assert f"sample {sample}: subject {train_subject}, but its id names {truth}" in result.output
    assert "contradicts itself or its protocol" in result.output
    with pytest.raises(ManifestMismatch, match=f"sample {sample}: subject {train_subject}"):
        CheckedManifest.of_protocol("cross-dataset", tmp_path / "m").against(
            base / "merged.h5", items
        )


def test_a_rehashed_manifest_of_another_shape_is_refused(tmp_path):
    def flatten(content):
        content["repetitions"][0]["subjects"][0] = "bu3dfe:F0001"

    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(edited(flatten)))
    with pytest.raises(sp.ManifestError, match="not a manifest of the shape"):
        sp.read_manifest(path)


def test_train_refuses_a_manifest_that_leaks_before_it_reads_the_dataset(tmp_path):
    content = edited(lambda c: c["repetitions"][0]["subjects"][1].append("bu3dfe:F0001"))
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(content))
    data = tmp_path / "merged.h5"
    data.write_bytes(b"never read")
    args = ["train", "--dataset", data, "--manifest", path, "--out", tmp_path / "out"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path} contradicts itself" in result.output
    assert "subject bu3dfe:F0001 is in fold" in result.output
    assert not (tmp_path / "out").exists()


def test_a_manifest_of_a_protocol_of_ones_own_is_checked_against_itself():
    custom = sp.Protocol(**{**FULL.__dict__, "name": "my-full", "folds": 4})
    content = sp.make_manifest(custom, CATALOGUE, "test").content
    assert sp.Manifest(content).broken_invariants(sp.Manifest(content).stated_protocol()) == []
    content["repetitions"][0]["counts"][2]["fear"] += 1
    assert sp.Manifest(content).broken_invariants(sp.Manifest(content).stated_protocol()) == [
        "repetition 0, fold 2: stated counts fear "
        f"{content['repetitions'][0]['counts'][2]['fear']} "
        f"(its samples: {content['repetitions'][0]['counts'][2]['fear'] - 1})"
    ]
