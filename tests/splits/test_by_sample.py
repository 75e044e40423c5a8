"""Folds dealt by sample, as the paper's code deals them, beside the benchmark's by subject.

A by-sample protocol deals sample ids with the subject rule, so the same person trains and
tests; these tests hold it to its docstring (a second deal written here), keep the subject
manifests exactly as published, and check that every reader of a manifest answers in samples.
"""

import copy
import csv
import hashlib
import io
import json

import pytest
from click.testing import CliRunner
from worlds import SMALL, SMALL_SIZE

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import Fer3dError, ManifestMismatch
from fer3d_bench.folds import folds
from fer3d_bench.manifests import CheckedManifest, bu3dfe_catalogue
from fer3d_bench.resources import manifests_dir
from fer3d_bench.tune import TuneError
from fer3d_bench.tune.nested import nested_split

PUBLISHED = manifests_dir()
SUBJECT_MANIFESTS = ("bu3dfe-legacy/1.0.0.json", "bu3dfe-full/1.0.0.json")
# (protocol, classes, intensities, subjects drawn under which name, folds, repetitions)
BY_SAMPLE = {
    "bu3dfe-legacy-by-sample": ("AN DI FE HA SA SU", (3, 4), (60, "bu3dfe-legacy"), 10, 100),
    "bu3dfe-full-by-sample": ("AN DI FE HA NE SA SU", None, None, 5, 1),
}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def sums() -> dict[str, str]:
    lines = (PUBLISHED / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ") for line in lines)}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def deal_by_sample(name, codes, intensities, draw, k, repetitions):
    """The docstring's rule again, from BU-3DFE's naming scheme alone: per repetition, sample
    id -> fold. Version 1.x.x and seed 0, as the protocol files say; no balance."""
    subjects = [f"F{i:04d}" for i in range(1, 57)] + [f"M{i:04d}" for i in range(1, 45)]
    levels = intensities or (1, 2, 3, 4)
    ids = [
        f"bu3dfe:{s}_{c}{level:02d}"
        for s in subjects
        for c in codes.split()
        for level in ((0,) if c == "NE" else levels)
    ]
    if draw:
        count, as_name = draw
        ranked = sorted(subjects, key=lambda s: sha(f"{as_name}|1|0|select|bu3dfe:{s}"))
        kept = set(ranked[:count])
        ids = [i for i in ids if i[7:12] in kept]
    out = []
    for r in range(repetitions):
        order = sorted(ids, key=lambda i: sha(f"{name}|1|0|{r}|{i}"))
        out.append({i: n % k for n, i in enumerate(order)})
    return out


def fold_of(content, repetition):
    groups = content["repetitions"][repetition]["samples"]
    return {i: k for k, group in enumerate(groups) for i in group}


@pytest.mark.parametrize("name", sorted(BY_SAMPLE))
def test_a_second_deal_from_the_docstring_reproduces_the_published_folds(name):
    expected = deal_by_sample(name, *BY_SAMPLE[name])
    content = sp.read_manifest(PUBLISHED / name / "1.0.0.json").content
    assert content["unit"] == "sample" and "subjects" not in content["repetitions"][0]
    assert set(content["samples"]) == set(expected[0])
    assert len(content["repetitions"]) == len(expected)
    for r, want in enumerate(expected):
        assert fold_of(content, r) == want
    rows = list(csv.reader(io.StringIO((PUBLISHED / name / "1.0.0.csv").read_text())))
    assert len(rows) == len(expected[0]) + 1
    for row in rows[1:]:
        assert [int(f) for f in row[3:]] == [want[row[0]] for want in expected]
    listed = sums()
    for path in (f"{name}/1.0.0.json", f"{name}/1.0.0.csv"):
        assert listed[path] == hashlib.sha256((PUBLISHED / path).read_bytes()).hexdigest()


def test_legacy_by_sample_draws_the_legacy_subjects_and_puts_them_on_both_sides():
    legacy = sp.read_manifest(PUBLISHED / "bu3dfe-legacy/1.0.0.json")
    by_sample = sp.read_manifest(PUBLISHED / "bu3dfe-legacy-by-sample/1.0.0.json")
    assert by_sample.samples() == legacy.samples()  # the same 720 scans of the same 60 people
    assert by_sample.unit == "sample" and legacy.unit == "subject"
    assert by_sample.broken_invariants(sp.load_protocol("bu3dfe-legacy-by-sample")) == []
    for manifest, leaks in ((by_sample, True), (legacy, False)):
        samples = manifest.samples()
        for fold in range(10):
            tested = manifest.test_samples(0, fold)
            assert len(tested) == 72
            trained = {samples[s].subject for s in set(samples) - tested}
            assert manifest.test_subjects(0, fold) == {samples[s].subject for s in tested}
            assert bool(manifest.test_subjects(0, fold) & trained) == leaks


def test_subject_manifests_are_unchanged(tmp_path):
    listed = sums()
    for path in SUBJECT_MANIFESTS:
        data = (PUBLISHED / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == listed[path]
        assert "unit" not in json.loads(data)
    result = run(
        "splits",
        "generate",
        "--naming-scheme",
        "--out",
        tmp_path,
        *("--protocol", "bu3dfe-legacy", "--protocol", "bu3dfe-full"),
        *("--protocol", "bu3dfe-legacy-by-sample", "--protocol", "bu3dfe-full-by-sample"),
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("folds dealt by sample") == 2
    assert (tmp_path / "SHA256SUMS").read_text() == (PUBLISHED / "SHA256SUMS").read_text()
    for name in listed:
        assert (tmp_path / name).read_bytes() == (PUBLISHED / name).read_bytes()


def test_a_subject_manifest_still_refuses_a_subject_on_both_sides():
    protocol = sp.load_protocol("bu3dfe-full")
    content = copy.deepcopy(sp.make_manifest(protocol, bu3dfe_catalogue(), "t").content)
    groups = content["repetitions"][0]["subjects"]
    groups[1].append(groups[0][0])
    broken = sp.Manifest(content).broken_invariants(protocol)
    assert any(f"subject {groups[0][0]} is in fold 0 and fold 1" in line for line in broken)


def test_by_sample_folds_on_a_merged_file_test_each_sample_once_and_share_people(worlds, tmp_path):
    merged = worlds.world(SMALL, SMALL_SIZE).merged
    name = "bu3dfe-legacy-by-sample"
    result = run("splits", "generate", "--protocol", name, "--dataset", merged, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    path = tmp_path / name / "1.0.0.json"
    manifest = sp.read_manifest(path)
    with H5Dataset(merged) as data:
        n_samples = len(manifest)
        subject_of = {s: str(data.subjects[data.index_of(s)]) for s in manifest.samples()}
        everything = {data.index_of(s) for s in manifest.samples()}
        for r in range(3):
            tested = []
            for fold in range(10):
                train, test = manifest.fold_indices(data, r, fold)
                assert set(train) | set(test) == everything and not set(train) & set(test)
                tested += [data.sample_ids[i] for i in test]
            assert sorted(tested) == sorted(manifest.samples())  # each sample once per repetition
    assert n_samples == 36  # 3 subjects x 6 classes x 2 intensities
    listed = folds(name, merged, tmp_path, repetitions=1)
    assert len(listed) == 10
    shared = [
        f
        for f in listed
        if {subject_of[s] for s in f.train_ids} & {subject_of[s] for s in f.test_ids}
    ]
    assert shared  # the point: the same person in train and test of a fold
    verified = run("splits", "verify", "--manifest", path, "--dataset", merged)
    assert verified.exit_code == 0 and "ok: the dataset matches" in verified.output
    shown = run("splits", "show", path, "--repetition", "2")
    assert (
        shown.exit_code == 0
        and "(kfold by sample), repetition 2 (the 3rd of 100, numbered from 0)" in shown.output
    )
    assert "3 of 3 subjects have samples in more than one group" in shown.output
    too_far = run("splits", "show", path, "--repetition", "100")
    assert too_far.exit_code == 2 and "repetitions 0 to 99" in too_far.output


def _rehashed(change) -> sp.Manifest:
    content = sp.read_manifest(PUBLISHED / "bu3dfe-full-by-sample/1.0.0.json").content
    content = copy.deepcopy(content)
    change(content)
    content["sha256"] = sp.content_hash(content)
    return sp.Manifest(content)


def test_broken_invariants_catch_a_sample_in_two_folds_and_wrong_counts(tmp_path):
    protocol = sp.load_protocol("bu3dfe-full-by-sample")
    assert _rehashed(lambda c: None).broken_invariants(protocol) == []

    def twice(content):
        groups = content["repetitions"][0]["samples"]
        groups[3].append(groups[0][0])
        groups[3].sort()

    def move(content):  # a sample changes fold, the stated counts stay
        groups = content["repetitions"][0]["samples"]
        groups[1].append(groups[0].pop())

    def lost(content):
        content["repetitions"][0]["samples"][2].pop(0)

    first = _rehashed(lambda c: None).content["repetitions"][0]["samples"][0][0]
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(_rehashed(twice).content))
    read = sp.read_manifest(path)  # the hash matches: only the invariants can tell
    broken = read.broken_invariants(protocol)
    assert f"repetition 0: sample {first} is in fold 0 and fold 3" in broken
    with pytest.raises(ManifestMismatch, match="is in fold 0 and fold 3"):
        CheckedManifest(protocol, read, path).checked()
    broken = _rehashed(move).broken_invariants(protocol)
    assert any(line.startswith("repetition 0, fold 0: stated counts") for line in broken)
    assert any(line.startswith("repetition 0, fold 1: stated counts") for line in broken)
    broken = _rehashed(lost).broken_invariants(protocol)
    assert any(line.endswith("is in no fold") and "sample bu3dfe:" in line for line in broken)
    # a by-sample manifest that lost its unit, or states one nobody deals by, is not read
    as_subjects = _rehashed(lambda c: c.pop("unit"))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(as_subjects.content))
    with pytest.raises(sp.ManifestError, match=f"^{path}: not a manifest of the shape"):
        sp.read_manifest(path)
    path.write_text(json.dumps(_rehashed(lambda c: c.update(unit="image")).content))
    with pytest.raises(sp.ManifestError, match=f"^{path}: unit must be subject or sample, not"):
        sp.read_manifest(path)
    ghost = _rehashed(lambda c: c["repetitions"][0]["samples"][4].append("bu3dfe:F0001_XX09"))
    assert (
        "repetition 0: sample bu3dfe:F0001_XX09 of fold 4 has no sample in the manifest"
        in ghost.broken_invariants(protocol)
    )
    subject_protocol = sp.load_protocol("bu3dfe-full")
    assert "unit 'sample' is not the protocol's 'subject'" in _rehashed(
        lambda c: None
    ).broken_invariants(subject_protocol)


@pytest.mark.parametrize("value", ['"person"', "3", '["sample"]'])
def test_a_bad_unit_is_refused_in_one_line_naming_the_file(tmp_path, value):
    text = (sp.PROTOCOLS_DIR / "bu3dfe-full-by-sample.toml").read_text()
    path = tmp_path / "bu3dfe-full-by-sample.toml"
    path.write_text(text.replace('unit = "sample"', f"unit = {value}"))
    with pytest.raises(Fer3dError) as raised:
        sp.load_protocol(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: unit must be subject or sample, not ")
    path.write_text(text.replace('unit = "sample"\n', ""))
    assert sp.load_protocol(path).unit == "subject"  # the default


def test_score_reads_test_samples_of_either_unit():
    """`score` checks predictions against `test_samples`: by sample, exactly one fold's ids."""
    by_sample = sp.read_manifest(PUBLISHED / "bu3dfe-full-by-sample/1.0.0.json")
    by_subject = sp.read_manifest(PUBLISHED / "bu3dfe-full/1.0.0.json")
    for manifest in (by_sample, by_subject):
        seen = [manifest.test_samples(0, fold) for fold in range(5)]
        assert sum(len(s) for s in seen) == 2500 and set().union(*seen) == set(manifest.samples())
    assert by_sample.test_samples(0, 2) == set(by_sample.content["repetitions"][0]["samples"][2])
    subjects = set(by_subject.content["repetitions"][0]["subjects"][2])
    assert by_subject.test_samples(0, 2) == {
        s for s, e in by_subject.samples().items() if e.subject in subjects
    }
    with pytest.raises(sp.ManifestError, match="fold 5 does not exist"):
        by_sample.test_samples(0, 5)


def test_nested_tuning_refuses_a_by_sample_protocol(worlds, tmp_path):
    world = worlds.world(SMALL, SMALL_SIZE)
    with pytest.raises(TuneError) as raised:
        nested_split(world.merged, "bu3dfe-full-by-sample", tmp_path, 0, 0, 2, 0)
    message = str(raised.value)
    assert "\n" not in message and "bu3dfe-full-by-sample.toml" in message
    assert "deals its folds by sample" in message


def test_a_manifest_of_an_own_by_sample_protocol_states_its_unit(tmp_path):
    text = (sp.PROTOCOLS_DIR / "bu3dfe-full-by-sample.toml").read_text()
    path = tmp_path / "mine.toml"
    path.write_text(text.replace('"bu3dfe-full-by-sample"', '"mine"'))
    protocol = sp.load_protocol(path)
    manifest = sp.make_manifest(protocol, bu3dfe_catalogue(), "t")
    stated = manifest.stated_protocol()
    assert stated.unit == "sample" and stated.folds == 5
    assert manifest.broken_invariants(stated) == []


@pytest.mark.parametrize(
    "name", ["bu3dfe-legacy-by-sample", "bu3dfe-full-by-sample", "cald3r-mend3s-by-sample"]
)
def test_every_by_sample_protocol_on_the_tiny_sample(tiny_merged, tmp_path, name):
    """One subject a dataset: by subject most folds would be empty, by sample none is."""
    merged = tiny_merged[0] / "merged.h5"
    result = run("splits", "generate", "--protocol", name, "--dataset", merged, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    manifest = sp.read_manifest(tmp_path / name / "1.0.0.json")
    protocol = sp.load_protocol(name)
    assert manifest.unit == "sample" and manifest.broken_invariants(protocol) == []
    for r in range(manifest.repetitions):
        sizes = [len(group) for group in manifest.members(r)]
        assert sum(sizes) == len(manifest) and max(sizes) - min(sizes) <= 1
    verified = run(
        "splits", "verify", "--manifest", tmp_path / name / "1.0.0.json", "--dataset", merged
    )
    assert verified.exit_code == 0, verified.output


def test_a_by_sample_holdout_splits_each_stratum_of_samples():
    items = [
        sp.Item(f"cald3r:F_{s:03d}_{n:04d}_{c}", f"cald3r:{s:03d}", "cald3r", c, -1, "F")
        for s in range(4)
        for n, c in enumerate(("anger", "neutral") * 5)
    ]
    protocol = sp.Protocol(
        name="t",
        version="1.0.0",
        datasets=("cald3r",),
        classes=("anger", "neutral"),
        kind="holdout",
        test_fraction=0.25,
        balance=("label",),
        unit="sample",
    )
    manifest = sp.make_manifest(protocol, items, "t")
    train, test = manifest.members(0)
    assert len(test) == 10 and len(train) == 30 and not set(train) & set(test)
    assert [sum(c.values()) for c in manifest.counts(0)] == [30, 10]
    assert manifest.counts(0)[1] == {"anger": 5, "neutral": 5}  # stratified by label
    assert manifest.broken_invariants(protocol) == []
    assert set(manifest.subjects(0)[0]) & set(manifest.subjects(0)[1])
