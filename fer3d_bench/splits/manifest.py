"""The typed manifest: `data_manifests/<protocol>/<version>.json`, its CSV and SHA256SUMS.

A manifest names samples, subjects and folds, never pixels; its sha256 covers the canonical
JSON of everything else. Reading it checks the hash, the shape every reader relies on, the
names that become folders and files, and the major version; what the assignment guarantees
(complete folds counted as stated, subject-independent unless dealt by sample) is checked by
`broken_invariants`, since anybody can edit a manifest and hash it again.

Each repetition holds its groups (k folds, or train and test) as the ids its protocol dealt:
`"subjects": [[subject ids] ...]` by subject (no `unit` key: the original shape), or, with
`"unit": "sample"` at the top, `"samples": [[sample ids] ...]`. The methods answer the same
questions of both, in samples (`fold_of`, `test_samples`, `fold_indices`, `csv`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path, inside, output_folder
from fer3d_bench.names import checked_name, checked_version
from fer3d_bench.records.io import RecordError, read_json
from fer3d_bench.resources import manifests_dir
from fer3d_bench.sources import subject_of
from fer3d_bench.splits.protocol import Protocol, installed, load_protocol

MANIFESTS_DIR = manifests_dir()
UNSAFE_ID = re.compile(r"[/\\]|\.\.")
GROUP_KEYS = {"subject": "subjects", "sample": "samples"}  # unit -> a repetition's group key


class ManifestError(Fer3dError):
    """A manifest is damaged, edited by hand, too new, or does not match a dataset."""


@dataclass(frozen=True)
class Entry:
    """What a manifest says of one sample."""

    subject: str
    label: str


class Manifest:
    """A manifest's content, read through methods; `content` is the JSON as written."""

    def __init__(self, content: dict):
        self.content = content

    def __eq__(self, other) -> bool:
        return isinstance(other, Manifest) and other.content == self.content

    __hash__ = None

    @property
    def sha256(self) -> str:
        return self.content["sha256"]

    @property
    def protocol_name(self) -> str:
        return self.content["protocol"]

    @property
    def version(self) -> str:
        return self.content["version"]

    @property
    def kind(self) -> str:
        return self.content["kind"]

    @property
    def seed(self) -> int | None:
        return self.content.get("seed")

    @property
    def classes(self) -> list[str]:
        return list(self.content["classes"])

    @property
    def repetitions(self) -> int:
        return len(self.content["repetitions"])

    @property
    def unit(self) -> str:
        """What its protocol dealt into folds: "subject" (a manifest without `unit`) or
        "sample"."""
        return self.content.get("unit", "subject")

    @property
    def groups(self) -> int:
        """Groups per repetition: k folds, or train and test."""
        reps = self.content["repetitions"]
        return len(self.members(0)) if reps else 1

    def samples(self) -> dict[str, Entry]:
        """Sample id -> its subject and label, by sample id."""
        return {
            sample_id: Entry(info["subject"], info["label"])
            for sample_id, info in sorted(self.content["samples"].items())
        }

    def __len__(self) -> int:
        return len(self.content["samples"])

    def members(self, repetition: int) -> list[list[str]]:
        """The groups of one repetition (folds, or train and test) as the manifest holds them:
        subject ids, or sample ids by sample."""
        return self.content["repetitions"][repetition][GROUP_KEYS[self.unit]]

    def subjects(self, repetition: int) -> list[list[str]]:
        """The subjects of each group of one repetition; by sample, those with a sample in the
        group, so one subject may be in several."""
        if self.unit == "subject":
            return self.members(repetition)
        samples = self.content["samples"]
        return [
            sorted({samples[s]["subject"] for s in group if s in samples})
            for group in self.members(repetition)
        ]

    def fold_of(self, repetition: int) -> dict[str, int]:
        """Sample id -> its group in one repetition (by subject: its subject's group), for the
        samples the groups place."""
        if self.unit == "sample":
            return {s: k for k, group in enumerate(self.members(repetition)) for s in group}
        group_of = {s: k for k, group in enumerate(self.members(repetition)) for s in group}
        return {
            sample_id: group_of[info["subject"]]
            for sample_id, info in self.content["samples"].items()
            if info["subject"] in group_of
        }

    def counts(self, repetition: int) -> list[dict[str, int]]:
        """The stated class counts of each group of one repetition."""
        return self.content["repetitions"][repetition]["counts"]

    def _test_group(self, repetition: int, fold: int) -> int:
        """The index of one fold's test group (of a hold-out or cross split, its second);
        ManifestError when the manifest has no such fold."""
        if not 0 <= repetition < self.repetitions:
            raise ManifestError(f"repetition {repetition} does not exist in {self.protocol_name}")
        test_group = fold if self.kind == "kfold" else 1
        if not 0 <= test_group < len(self.members(repetition)):
            raise ManifestError(f"fold {fold} does not exist in {self.protocol_name}")
        return test_group

    def test_subjects(self, repetition: int, fold: int) -> set[str]:
        """The subjects with a test sample in one fold of one repetition; by sample, some of
        them train in that fold too."""
        return set(self.subjects(repetition)[self._test_group(repetition, fold)])

    def test_samples(self, repetition: int, fold: int) -> set[str]:
        """The ids of one fold's test samples."""
        test_group = self._test_group(repetition, fold)
        return {s for s, k in self.fold_of(repetition).items() if k == test_group}

    def fold_indices(self, data, repetition: int = 0, fold: int = 0):
        """(train, test) indices into a merged file (`dataset.H5Dataset`) for one fold of one
        repetition; ManifestError when the file lacks samples the manifest names."""
        tested = self.test_samples(repetition, fold)
        samples = self.samples()
        missing = [s for s in samples if s not in data]
        if missing:
            raise ManifestError(
                f"the dataset lacks {len(missing)} samples the manifest names (first: "
                f"{missing[0]}); run `fer3d-bench splits verify`"
            )
        train, test = [], []
        for sample_id in samples:
            (test if sample_id in tested else train).append(data.index_of(sample_id))
        return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)

    def stated_protocol(self) -> Protocol:
        """The protocol this manifest was made from: its file if installed, else what it states.

        A manifest of a protocol of one's own (`splits generate --protocol my.toml`) still gets
        its subjects, folds and counts checked against each other by `broken_invariants`.
        """
        if installed(self.protocol_name):
            return load_protocol(self.protocol_name)
        return Protocol(
            name=self.protocol_name,
            version=self.version,
            datasets=tuple(sorted({s.partition(":")[0] for s in self.content["samples"]})),
            classes=tuple(self.classes),
            kind=self.kind,
            repetitions=self.repetitions,
            seed=self.content.get("seed", 0),
            folds=self.groups,
            unit=self.unit,
        )

    def broken_invariants(self, protocol: Protocol) -> list[str]:
        """What this manifest states that its own samples, folds or its protocol contradict.

        The hash proves only that nobody edited the manifest without hashing it again, and
        anybody can. What the assignment guarantees is checked on whatever the file holds
        instead: each sample's subject is the one its id names, each unit dealt (subject, or
        sample by sample) sits in exactly one fold of every repetition, the stated class counts
        are those of the samples, and unit, kind, seed, classes and number of repetitions and
        folds are the protocol's. By subject, that makes every fold subject-independent; by
        sample it does not, and is not meant to.
        """
        problems = []
        content, samples = self.content, self.samples()
        expected = {"kind": protocol.kind, "seed": protocol.seed, "classes": list(protocol.classes)}
        for key, want in expected.items():
            if content.get(key) != want:
                problems.append(f"{key} {content.get(key)!r} is not the protocol's {want!r}")
        if self.unit != protocol.unit:
            problems.append(f"unit {self.unit!r} is not the protocol's {protocol.unit!r}")
        for sample_id, entry in samples.items():
            named = subject_of(sample_id)
            if sample_id.partition(":")[0] not in protocol.datasets:
                problems.append(f"sample {sample_id}: not of a dataset of the protocol")
            elif named != entry.subject:
                problems.append(
                    f"sample {sample_id}: subject {entry.subject}, but its id names "
                    f"{named or 'no subject of a known dataset'}"
                )
            if entry.label not in protocol.classes:
                problems.append(f"sample {sample_id}: label {entry.label!r} is not a class")
        if self.repetitions != protocol.repetitions:
            problems.append(
                f"{self.repetitions} repetitions, not the protocol's {protocol.repetitions}"
            )
        for r in range(self.repetitions):
            problems += self._fold_problems(protocol, r, samples)
        return problems

    def _fold_problems(
        self, protocol: Protocol, repetition: int, samples: dict[str, Entry]
    ) -> list[str]:
        """One repetition's folds: each unit in exactly one, complete, and counted as stated."""
        where, kind, unit = f"repetition {repetition}", protocol.kind, self.unit
        members, stated = self.members(repetition), self.counts(repetition)
        n_folds = protocol.groups
        if len(members) != n_folds or len(stated) != n_folds:
            return [f"{where}: {len(members)} folds and {len(stated)} counts, not {n_folds}"]
        problems, fold_of = [], {}
        for k, units in enumerate(members):
            for member in units:
                if member in fold_of:
                    first = fold_name(kind, fold_of[member])
                    problems.append(
                        f"{where}: {unit} {member} is in {first} and {fold_name(kind, k)}"
                    )
                fold_of.setdefault(member, k)
        known = set(samples) if unit == "sample" else {e.subject for e in samples.values()}
        for member in sorted(set(fold_of) - known):
            problems.append(
                f"{where}: {unit} {member} of {fold_name(kind, fold_of[member])} "
                "has no sample in the manifest"
            )
        counts = [dict.fromkeys(self.classes, 0) for _ in range(n_folds)]
        unassigned: dict[str, str] = {}  # unit -> its first sample
        for sample_id, entry in samples.items():
            member = sample_id if unit == "sample" else entry.subject
            k = fold_of.get(member)
            if k is None:
                unassigned.setdefault(member, sample_id)
            elif entry.label in counts[k]:
                counts[k][entry.label] += 1
        for member, sample_id in sorted(unassigned.items()):
            of = "" if unit == "sample" else f" (of {sample_id})"
            problems.append(f"{where}: {unit} {member}{of} is in no fold")
        for k, (said, found) in enumerate(zip(stated, counts, strict=True)):
            if said != found:
                differ = sorted(c for c in {*said, *found} if said.get(c) != found.get(c))
                text = ", ".join(f"{c} {said.get(c)} (its samples: {found.get(c)})" for c in differ)
                problems.append(f"{where}, {fold_name(kind, k)}: stated counts {text}")
        return problems

    def table(self, repetition: int = 0) -> str:
        """Per-fold class counts of one repetition, as text; by sample, with the subjects that
        have samples on both sides of a fold."""
        classes = self.classes
        header = (
            f"{'fold':>6} {'subjects':>8} " + " ".join(f"{c[:9]:>9}" for c in classes) + "    total"
        )
        dealt = " by sample" if self.unit == "sample" else ""
        lines = [
            f"{self.protocol_name} {self.version} ({self.kind}{dealt}), "
            f"{repetition_in_words(repetition, self.repetitions)}",
            header,
        ]
        names = ["train", "test"] if self.kind != "kfold" else None
        groups = zip(self.subjects(repetition), self.counts(repetition), strict=True)
        for k, (members, counts) in enumerate(groups):
            label = names[k] if names else str(k)
            lines.append(
                f"{label:>6} {len(members):>8} "
                + " ".join(f"{counts[c]:>9}" for c in classes)
                + f"  {sum(counts.values()):>7}"
            )
        if self.unit == "sample":
            seen: dict[str, int] = {}
            for members in self.subjects(repetition):
                for subject in members:
                    seen[subject] = seen.get(subject, 0) + 1
            shared = sum(1 for n in seen.values() if n > 1)
            lines.append(
                f"dealt by sample: {shared} of {len(seen)} subjects have samples in more than one "
                "group (the same person trains and tests)"
            )
        return "\n".join(lines)

    def csv(self) -> str:
        """One row per sample: id, subject, label and its group in each repetition."""
        folds = [self.fold_of(r) for r in range(self.repetitions)]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["sample_id", "subject", "label", *(f"fold_r{r}" for r in range(len(folds)))]
        )
        for sample_id, entry in self.samples().items():
            writer.writerow([sample_id, entry.subject, entry.label, *(f[sample_id] for f in folds)])
        return buffer.getvalue()


def fold_name(kind: str, fold: int) -> str:
    """A fold as messages name it: `fold 3`, or `train` and `test` of a hold-out."""
    return f"fold {fold}" if kind == "kfold" else ("train", "test")[fold]


def repetition_in_words(index: int, count: int) -> str:
    """'repetition 1 (the 2nd of 100, numbered from 0)': indices are 0-based everywhere people
    read them (folders, manifests, --repetition, --fold, fold lines), and said so where a
    count stands beside one."""
    return f"repetition {index} (the {ordinal(index + 1)} of {count}, numbered from 0)"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def manifest_path(directory: Path, protocol: Protocol) -> Path:
    """Where a protocol's manifest lies in a folder of manifests: `<name>/<version>.json`."""
    return Path(directory) / protocol.name / f"{protocol.version}.json"


def content_hash(content: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of everything but the hash."""
    body = {k: v for k, v in content.items() if k != "sha256"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def write_manifest(manifest: Manifest, directory: Path) -> list[Path]:
    """<dir>/<protocol>/<version>.json and .csv, then refresh <dir>/SHA256SUMS.

    Each path is checked to lie inside `directory` before anything is written: the protocol
    and version come from files other people wrote, and a folder may be a link elsewhere.
    """
    folder = inside(directory, Path(directory) / manifest.protocol_name)
    json_path = inside(directory, folder / f"{manifest.version}.json")
    csv_path = inside(directory, folder / f"{manifest.version}.csv")
    sums_path = inside(directory, Path(directory) / "SHA256SUMS")
    output_folder(directory, folder)  # refuses a link in its place, even one that leads inside
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(manifest.content, indent=1, sort_keys=True) + "\n")
    with atomic_path(csv_path) as tmp:
        tmp.write_text(manifest.csv())
    _write_sums(Path(directory), sums_path)
    return [json_path, csv_path]


def _write_sums(directory: Path, sums_path: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(directory).as_posix()}"
        for p in sorted(directory.glob("*/*.*"))
        if p.suffix in (".json", ".csv")
    ]
    with atomic_path(sums_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_manifest(path: Path, supported_major: int = 1) -> Manifest:
    """A manifest, refused if damaged, edited by hand, or of a newer major version."""
    try:
        content = read_json(path, what="manifest")
    except RecordError as error:
        raise ManifestError(str(error)) from None
    if "sha256" not in content or content_hash(content) != content["sha256"]:
        raise ManifestError(
            f"{path}: content does not match its sha256 (edited by hand or damaged); "
            "regenerate it with `fer3d-bench splits generate`"
        )
    checked_name(content.get("protocol"), "manifest protocol", path)
    checked_version(content.get("version"), "manifest version", path)
    unit = content.get("unit", "subject")
    if not isinstance(unit, str) or unit not in GROUP_KEYS:
        raise ManifestError(f"{path}: unit must be subject or sample, not {unit!r}")
    if not _fits(content, _SHAPE) or not _fits(content, _GROUPS[unit]):
        raise ManifestError(f"{path}: not a manifest of the shape `splits generate` writes")
    major = int(content["version"].split(".")[0])
    if major > supported_major:
        raise ManifestError(
            f"{path}: manifest version {content['version']} is newer than this fer3d-bench "
            f"reads ({supported_major}.x); upgrade fer3d-bench"
        )
    for sample_id in content["samples"]:
        if UNSAFE_ID.search(sample_id):
            raise ManifestError(f"{path}: sample id {sample_id!r} holds a path separator or '..'")
    return Manifest(content)


# What every reader of a manifest relies on; anything else is refused before it is used.
_SHAPE = {
    "kind": str,
    "classes": [str],
    "samples": {str: {"subject": str, "label": str}},
    "repetitions": [{"counts": [{str: int}]}],
}
# and each repetition's groups, under the key of the manifest's unit
_GROUPS = {unit: {"repetitions": [{key: [[str]]}]} for unit, key in GROUP_KEYS.items()}


def _fits(value, shape) -> bool:
    """Whether JSON `value` has `shape`: a type, [shape of each item], {str: shape of each
    value}, or {key: shape} for required keys (others are allowed)."""
    if isinstance(shape, type):
        return isinstance(value, shape)
    if isinstance(shape, list):
        return isinstance(value, list) and all(_fits(v, shape[0]) for v in value)
    if not isinstance(value, dict):
        return False
    if str in shape:
        return all(_fits(v, shape[str]) for v in value.values())
    return all(k in value and _fits(value[k], s) for k, s in shape.items())
