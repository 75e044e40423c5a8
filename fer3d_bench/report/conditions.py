"""The conditions of a run's numbers, per (variant, protocol), from what run.json recorded;
what keeps two numbers from comparing; and what a title says of them.

A run fer3d-bench trained states every condition; a scored submission states what its
submitter said (`score --epoch-selection ... --epochs ...`; the unit is the manifest's), and
the rest is "not stated".
"""

from __future__ import annotations

from fer3d_bench.records.conditions import NOT_STATED, OPTIMISTIC, Conditions
from fer3d_bench.records.run import RunInfo, flat_config
from fer3d_bench.resources import manifests_dir
from fer3d_bench.splits import read_manifest

# what a title says of a condition that differs from the protocol as published
LEAKY_NOTE = "folds by sample: the same person in train and test"
OPTIMISTIC_NOTE = "epoch chosen on the test fold (optimistic)"
TUNED_NOTE = "hyperparameters tuned on subjects of its own test folds"
TUNED_ON = "hyperparameters tuned on the training subjects of repetition"  # in test_seen
DATA_NOTE = "not the published manifest"


def group_conditions(info: RunInfo, protocol: str, variant: str = "full") -> Conditions:
    """The conditions of `variant`'s numbers on `protocol` in the run `info` describes."""
    entry = info.protocols[protocol]
    data = dict(
        repetitions=entry.repetitions_run,
        folds=entry.folds_planned,
        data=entry.manifest_sha256 or NOT_STATED,
        published_manifest=entry.manifest_published,
        subjects=entry.subjects,
        samples=entry.samples,
    )
    if info.submission is not None:  # someone else's model: only what they said
        stated = dict(info.submission.get("conditions") or {})
        return Conditions(
            unit=entry.dealt_by,  # the manifest deals the test folds: that much is ours to say
            epoch_selection=stated.get("epoch_selection", NOT_STATED),
            epochs=stated.get("epochs"),
            input_size=stated.get("input_size"),
            weights=stated.get("weights", NOT_STATED),
            test_seen=stated.get("test_seen", NOT_STATED),
            **data,
        )
    config = flat_config(info.variants.get(variant, info.variants["full"]))
    config |= dict(entry.train_applied or {})
    return Conditions(
        unit=entry.dealt_by,
        epoch_selection=entry.selection,
        epochs=config.get("epochs"),
        input_size=config.get("model.input_size"),
        weights=weights_words(info.weights_record),
        test_seen=test_seen(info, protocol, entry.selection),
        **data,
    )


def weights_words(record: dict) -> str:
    """The pretrained weights in a few words: none, a known file, or an unknown file's hash."""
    if not record.get("pretrained"):
        return "none (trained from scratch)"
    known, sha = record.get("known"), str(record.get("sha256") or "")[:12]
    if known in (None, "unknown"):
        claim = f", its metadata claims {record['claimed']}" if record.get("claimed") else ""
        return f"an unidentified file (sha256 {sha}…{claim})"
    return f"{known} (sha256 {sha}…)"


def test_seen(info: RunInfo, protocol: str, selection: str = "last") -> str:
    """'no', or which choices saw test folds: the epoch, when each fold reports its best test
    epoch, and a configuration tuned on one fold's training subjects, who are the test subjects
    of every other fold of that protocol."""
    seen = []
    if selection == OPTIMISTIC:
        seen.append("the epoch reported for each fold is its best on its own test samples")
    tuned = (info.config_file or {}).get("tuned")
    if tuned and tuned.get("protocol") == protocol:
        seen.append(
            f"{TUNED_ON} {tuned.get('repetition')} fold {tuned.get('fold')}, who are the test "
            "subjects of the other folds"
        )
    if seen:
        return "yes: " + "; ".join(seen)
    if tuned:
        return (
            f"no (hyperparameters tuned on {tuned.get('protocol')}, whose subjects may overlap "
            "this protocol's test folds)"
        )
    return "no"


def condition_notes(conditions: Conditions, protocol: str, version: str) -> list[str]:
    """How the conditions differ from the protocol as fer3d-bench publishes it (its published
    manifest, folds by subject, the last epoch, nothing tuned on a test fold), in words for a
    title; empty when they do not."""
    notes = []
    if conditions.published_manifest is False:
        notes.append(data_note(conditions, protocol, version))
    if conditions.leaky:
        notes.append(LEAKY_NOTE)
    if conditions.optimistic:
        notes.append(OPTIMISTIC_NOTE)
    if TUNED_ON in conditions.test_seen:  # the epoch's choice has its own note
        notes.append(TUNED_NOTE)
    return notes


def data_note(conditions: Conditions, protocol: str, version: str) -> str:
    """ "not the published manifest: 12 subjects, 300 samples (the published bu3dfe-legacy
    1.0.0: 60 subjects, 720 samples)": what the numbers were measured on, beside the protocol's
    published size where fer3d-bench publishes a manifest for it."""
    counts = [(conditions.subjects, "subjects"), (conditions.samples, "samples")]
    size = ", ".join(f"{n:,} {noun}" for n, noun in counts if n is not None)
    published = published_size(protocol, version)
    if published is None:
        beside = f"fer3d-bench publishes no manifest of {protocol} {version}"
    else:
        subjects, samples = published
        beside = f"the published {protocol} {version}: {subjects:,} subjects, {samples:,} samples"
    return f"{DATA_NOTE}{f': {size}' if size else ''} ({beside})"


def published_size(protocol: str, version: str) -> tuple[int, int] | None:
    """(subjects, samples) of the manifest fer3d-bench publishes for the protocol's version;
    None where it publishes none."""
    path = manifests_dir() / protocol / f"{version}.json"
    if not path.is_file():
        return None
    manifest = read_manifest(path)
    return len({entry.subject for entry in manifest.samples().values()}), len(manifest)


def published_sha256(protocol: str, version: str) -> str | None:
    """The sha256 of the manifest fer3d-bench publishes for the protocol's version; None where
    it publishes none."""
    path = manifests_dir() / protocol / f"{version}.json"
    return read_manifest(path).sha256 if path.is_file() else None


def differences(ours: Conditions, theirs: Conditions) -> list[str]:
    """What keeps a number under `ours` from lining up with one under `theirs`, in words."""
    return ours.differences(theirs)
