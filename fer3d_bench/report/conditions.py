"""The conditions of a run's numbers, per (variant, protocol), from what run.json recorded.

A run fer3d-bench trained states every condition; a scored submission states what its
submitter said (`score --unit ... --epoch-selection ...`), and the rest is "not stated".
"""

from __future__ import annotations

from fer3d_bench.records.conditions import NOT_STATED, Conditions
from fer3d_bench.records.run import RunInfo, flat_config


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
        test_seen=test_seen(info, protocol),
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


def test_seen(info: RunInfo, protocol: str) -> str:
    """'no', or which choice saw test folds: a configuration tuned on one fold's training
    subjects has seen the test subjects of every other fold of that protocol."""
    tuned = (info.config_file or {}).get("tuned")
    if not tuned:
        return "no"
    if tuned.get("protocol") != protocol:
        return (
            f"no (hyperparameters tuned on {tuned.get('protocol')}, whose subjects may overlap "
            "this protocol's test folds)"
        )
    return (
        f"yes: hyperparameters tuned on the training subjects of repetition "
        f"{tuned.get('repetition')} fold {tuned.get('fold')}, who are the test subjects of the "
        "other folds"
    )
