"""The deal: which subjects a protocol uses, and the fold each one goes to.

The assignment depends on nothing but names, so anyone can reimplement it from this docstring
(a second implementation written from the README alone reproduced the published manifests
byte for byte):

1. The protocol's samples are those of its datasets, classes and intensities; with `subjects`
   set, only the first that many subjects ranked by `rank_key(protocol, "select", subject)`.
2. Per repetition r, subjects are grouped into strata by the protocol's `balance` attributes
   (e.g. sex), strata taken in sorted order. Within a stratum, subjects are ranked by
   `rank_key(protocol, r, subject)`: the sha256 hex digest of
   "<protocol>|<major version>|<seed>|<r>|<subject id>", ascending.
3. k-fold: subjects are dealt into folds 0, 1, ..., k-1, 0, ... in that order, one counter
   continuing across strata, so the folds stay balanced in every stratum and overall.
   Hold-out: the first round(n * test_fraction) subjects of each stratum are the test group
   (at least one, and at least one left to train, in a stratum of two or more). Cross: a
   subject of a `test_datasets` dataset is tested, every other one trains.

No file-listing order, no library RNG stream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fer3d_bench.splits.manifest import UNSAFE_ID, Manifest, ManifestError, content_hash
from fer3d_bench.splits.protocol import Protocol

ALGORITHM = "sha256-rank-deal/1"


@dataclass(frozen=True)
class Item:
    """What a manifest needs to know of one sample; no paths, no pixels."""

    sample_id: str
    subject: str
    dataset: str
    label: str
    intensity: int = -1
    sex: str = ""


def rank_key(protocol: Protocol, repetition: int | str, subject: str) -> str:
    """The sort key of a subject: reimplementable in a few lines anywhere."""
    text = f"{protocol.name}|{protocol.major}|{protocol.seed}|{repetition}|{subject}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def uses(protocol: Protocol, item: Item) -> bool:
    """Whether the protocol's datasets, classes and intensities include this sample."""
    return (
        item.dataset in protocol.datasets
        and item.label in protocol.classes
        and (protocol.intensities is None or item.intensity in protocol.intensities)
    )


def select(protocol: Protocol, items: list[Item]) -> list[Item]:
    """The samples the protocol uses: its datasets, classes, intensities and drawn subjects."""
    for item in items:
        if UNSAFE_ID.search(item.sample_id):
            raise ManifestError(f"sample id {item.sample_id!r} holds a path separator or '..'")
    chosen = [i for i in items if uses(protocol, i)]
    if protocol.subjects is not None:
        subjects = sorted(
            {i.subject for i in chosen}, key=lambda s: rank_key(protocol, "select", s)
        )
        keep = set(subjects[: protocol.subjects])
        chosen = [i for i in chosen if i.subject in keep]
    return sorted(chosen, key=lambda i: i.sample_id)


def assign(protocol: Protocol, items: list[Item]) -> list[dict[str, int]]:
    """Per repetition, subject -> fold (for holdout and cross: 0 = train, 1 = test)."""
    subjects: dict[str, Item] = {}
    for item in items:
        subjects.setdefault(item.subject, item)
    out = []
    for repetition in range(protocol.repetitions):
        if protocol.kind == "cross":
            out.append(
                {s: int(i.dataset in protocol.test_datasets) for s, i in sorted(subjects.items())}
            )
            continue
        strata: dict[tuple, list[str]] = {}
        for subject, item in subjects.items():
            strata.setdefault(tuple(getattr(item, b) for b in protocol.balance), []).append(subject)
        folds: dict[str, int] = {}
        counter = 0
        for stratum in sorted(strata):
            ranked = sorted(strata[stratum], key=lambda s: rank_key(protocol, repetition, s))
            if protocol.kind == "kfold":
                for subject in ranked:
                    folds[subject] = counter % protocol.folds
                    counter += 1
            else:
                n_test = round(len(ranked) * protocol.test_fraction)
                if len(ranked) >= 2:  # a stratum of two or more subjects is always split
                    n_test = min(max(n_test, 1), len(ranked) - 1)
                folds.update({s: int(k < n_test) for k, s in enumerate(ranked)})
        out.append(dict(sorted(folds.items())))
    return out


def make_manifest(protocol: Protocol, items: list[Item], source: str) -> Manifest:
    """The manifest of `protocol` over `items` (all samples found), with its content hash."""
    chosen = select(protocol, items)
    if not chosen:
        raise ManifestError(f"{protocol.name}: no sample matches the protocol")
    assignment = assign(protocol, chosen)
    n_folds = protocol.groups
    repetitions = []
    for repetition, folds in enumerate(assignment):
        members = [sorted(s for s, f in folds.items() if f == k) for k in range(n_folds)]
        counts = [
            {
                c: sum(1 for i in chosen if folds[i.subject] == k and i.label == c)
                for c in protocol.classes
            }
            for k in range(n_folds)
        ]
        repetitions.append({"repetition": repetition, "subjects": members, "counts": counts})
    content = {
        "protocol": protocol.name,
        "version": protocol.version,
        "algorithm": ALGORITHM,
        "seed": protocol.seed,
        "kind": protocol.kind,
        "fold_meaning": "test fold index" if protocol.kind == "kfold" else "0 = train, 1 = test",
        "classes": list(protocol.classes),
        "datasets": list(protocol.datasets),
        "source": source,
        "samples": {i.sample_id: {"subject": i.subject, "label": i.label} for i in chosen},
        "repetitions": repetitions,
    }
    content["sha256"] = content_hash(content)
    return Manifest(content)
