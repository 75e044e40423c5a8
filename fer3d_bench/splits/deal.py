"""The deal: which subjects a protocol uses, and the fold each subject (or sample) goes to.

The assignment depends on nothing but names, so anyone can reimplement it from this docstring
(a second implementation written from the README alone reproduced the published manifests
byte for byte):

1. The protocol's samples are those of its datasets, classes and intensities; with `subjects`
   set, only the samples of the first that many subjects ranked by the sha256 hex digest of
   "<select_as>|<major version>|<seed>|select|<subject id>", ascending, where `select_as` is
   the protocol's own name unless its file names another protocol to draw the same subjects
   as. Subjects are drawn so whatever the unit.
2. The protocol's `unit` says what is dealt: "subject" (the default) deals subject ids, so all
   the samples of a person share one fold; "sample" deals sample ids, each on its own, so one
   person's samples spread over the folds (the paper's code: KFold over images). Everything
   below is the same for both, with "unit id" the subject id or the sample id.
3. Per repetition r, the units are grouped into strata by the protocol's `balance` attributes
   (e.g. sex; a subject's are those of its first sample by sample id), strata taken in sorted
   order. Within a stratum, units are ranked by `rank_key(protocol, r, unit id)`: the sha256
   hex digest of "<protocol>|<major version>|<seed>|<r>|<unit id>", ascending.
4. k-fold: units are dealt into folds 0, 1, ..., k-1, 0, ... in that order, one counter
   continuing across strata, so the folds stay balanced in every stratum and overall.
   Hold-out: the first round(n * test_fraction) units of each stratum are the test group
   (at least one, and at least one left to train, in a stratum of two or more). Cross: a
   unit of a `test_datasets` dataset is tested, every other one trains.

For example, `bu3dfe-legacy-by-sample` (version 1.0.0, seed 0, select_as bu3dfe-legacy, no
`balance`) keeps the 60 subjects that `bu3dfe-legacy` keeps (ranked by the sha256 of
"bu3dfe-legacy|1|0|select|bu3dfe:F0001" and so on), then in repetition 3 sorts their 720
sample ids by the sha256 of "bu3dfe-legacy-by-sample|1|0|3|bu3dfe:F0001_AN03" and so on, and
gives the n-th sample of that order fold n mod 10. No file-listing order, no library RNG stream.
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


def rank_key(protocol: Protocol, repetition: int | str, unit_id: str) -> str:
    """The sort key of a subject (or, by sample, a sample): reimplementable anywhere. The
    draw of subjects (`repetition` "select") ranks them under `select_as` when it is set."""
    name = protocol.select_as if repetition == "select" and protocol.select_as else protocol.name
    text = f"{name}|{protocol.major}|{protocol.seed}|{repetition}|{unit_id}"
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


def unit_of(protocol: Protocol, item: Item) -> str:
    """The id a protocol deals this sample by: its subject's, or its own."""
    return item.sample_id if protocol.unit == "sample" else item.subject


def assign(protocol: Protocol, items: list[Item]) -> list[dict[str, int]]:
    """Per repetition, unit id (subject, or sample by sample) -> fold (for holdout and
    cross: 0 = train, 1 = test)."""
    units: dict[str, Item] = {}
    for item in sorted(items, key=lambda i: i.sample_id):
        units.setdefault(unit_of(protocol, item), item)
    out = []
    for repetition in range(protocol.repetitions):
        if protocol.kind == "cross":
            out.append(
                {u: int(i.dataset in protocol.test_datasets) for u, i in sorted(units.items())}
            )
            continue
        strata: dict[tuple, list[str]] = {}
        for unit, item in units.items():
            strata.setdefault(tuple(getattr(item, b) for b in protocol.balance), []).append(unit)
        folds: dict[str, int] = {}
        counter = 0
        for stratum in sorted(strata):
            ranked = sorted(strata[stratum], key=lambda u: rank_key(protocol, repetition, u))
            if protocol.kind == "kfold":
                for unit in ranked:
                    folds[unit] = counter % protocol.folds
                    counter += 1
            else:
                n_test = round(len(ranked) * protocol.test_fraction)
                if len(ranked) >= 2:  # a stratum of two or more units is always split
                    n_test = min(max(n_test, 1), len(ranked) - 1)
                folds.update({u: int(k < n_test) for k, u in enumerate(ranked)})
        out.append(dict(sorted(folds.items())))
    return out


def make_manifest(protocol: Protocol, items: list[Item], source: str) -> Manifest:
    """The manifest of `protocol` over `items` (all samples found), with its content hash.

    A protocol dealt by sample gets `"unit": "sample"` and its groups as sample ids under
    `"samples"` in each repetition; one dealt by subject keeps the original shape, without a
    `unit` key, so its manifests stay byte for byte what they were.
    """
    chosen = select(protocol, items)
    if not chosen:
        raise ManifestError(f"{protocol.name}: no sample matches the protocol")
    assignment = assign(protocol, chosen)
    n_folds = protocol.groups
    group_key = "samples" if protocol.unit == "sample" else "subjects"
    repetitions = []
    for repetition, folds in enumerate(assignment):
        members = [sorted(u for u, f in folds.items() if f == k) for k in range(n_folds)]
        counts = [dict.fromkeys(protocol.classes, 0) for _ in range(n_folds)]
        for item in chosen:
            counts[folds[unit_of(protocol, item)]][item.label] += 1
        repetitions.append({"repetition": repetition, group_key: members, "counts": counts})
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
    if protocol.unit != "subject":
        content["unit"] = protocol.unit
    content["sha256"] = content_hash(content)
    return Manifest(content)
