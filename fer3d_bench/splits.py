"""Benchmark protocols -> versioned, verifiable split manifests (sample ids and hashes only).

The assignment depends on nothing but names: subjects are ranked by the sha256 of
"<protocol>|<major version>|<seed>|<repetition>|<subject id>" (hex digest, ascending), then dealt
into folds in that order, stratum by stratum, continuing one counter across strata, so the folds
stay balanced in every stratum and overall. No file-listing order, no library RNG stream.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path, inside
from fer3d_bench.names import UnsafeName, checked_name, checked_version
from fer3d_bench.records.io import RecordError, RecordNotFound, read_json, read_toml
from fer3d_bench.resources import manifests_dir, protocols_dir
from fer3d_bench.sources import BU3DFE, open_source
from fer3d_bench.taxonomy import load_label_map
from fer3d_bench.train.config import table_overrides

ALGORITHM = "sha256-rank-deal/1"
PROTOCOLS_DIR = protocols_dir()
MANIFESTS_DIR = manifests_dir()
_UNSAFE = re.compile(r"[/\\]|\.\.")


class ManifestError(Fer3dError):
    """A manifest is damaged, edited by hand, too new, or does not match a dataset."""


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    datasets: tuple[str, ...]
    classes: tuple[str, ...]
    kind: str  # "kfold", "holdout" or "cross"
    repetitions: int = 1
    seed: int = 0
    folds: int = 1
    subjects: int | None = None  # draw this many subjects (all if None)
    intensities: tuple[int, ...] | None = None
    test_fraction: float = 0.2
    balance: tuple[str, ...] = ()
    train_datasets: tuple[str, ...] = ()
    test_datasets: tuple[str, ...] = ()
    # the paper's training settings for this protocol, as (dotted key, value) pairs: they go
    # onto the `paper` preset (train.config.variant_configs) and never into a manifest
    train: tuple[tuple[str, object], ...] = ()

    @property
    def train_overrides(self) -> dict:
        return dict(self.train)

    @property
    def folds_per_repetition(self) -> int:
        """The folds a repetition is trained and tested as: a hold-out or cross split is one."""
        return self.folds if self.kind == "kfold" else 1

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@dataclass(frozen=True)
class Item:
    """What a manifest needs to know of one sample; no paths, no pixels."""

    sample_id: str
    subject: str
    dataset: str
    label: str
    intensity: int = -1
    sex: str = ""


@dataclass
class Manifest:
    content: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.content["sha256"]


def load_protocol(name_or_path: str | Path, directory: Path = PROTOCOLS_DIR) -> Protocol:
    """A protocol by name (`<directory>/<name>.toml`) or from a `.toml` file the user chose.

    An argument ending in `.toml` is a file; anything else must be a protocol name, so that
    `../x` never reaches a file outside `directory`. The file's `name` and `version` become
    folder and file names of every output (`<out>/<name>/<version>.json`, `runs/.../<name>/`),
    so they are checked here, where the file is read. A protocol file must be named after its
    protocol, so that one protocol has one name everywhere: the option, the manifest, run.json.
    """
    text = str(name_or_path)
    known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
    if text.endswith(".toml"):
        path = Path(name_or_path)
    else:
        try:
            checked_name(text, "protocol")
        except UnsafeName as error:
            raise UnsafeName(f"{error}, or a path to a .toml file (known: {known})") from None
        path = directory / f"{text}.toml"
    try:
        data = read_toml(path, what="protocol")
    except RecordNotFound:
        raise Fer3dError(f"{path}: no such protocol (known: {known})") from None
    tuples = ("datasets", "classes", "intensities", "balance", "train_datasets", "test_datasets")
    for key in tuples:
        if key in data:
            data[key] = tuple(data[key])
    if "train" in data:
        if not isinstance(data["train"], dict):
            raise Fer3dError(f"{path}: [train] must be a table of training settings")
        data["train"] = tuple(sorted(table_overrides(data["train"], f"{path} [train]").items()))
    try:
        protocol = Protocol(**data)
    except TypeError as exc:
        raise Fer3dError(f"{path}: {exc}") from None
    checked_name(protocol.name, "protocol name", path)
    checked_version(protocol.version, "protocol version", path)
    if path.stem != protocol.name:
        raise Fer3dError(
            f"{path}: the file is named {path.stem!r} but holds protocol {protocol.name!r}; "
            f"a protocol file must be named after its protocol ({protocol.name}.toml)"
        )
    if protocol.kind not in ("kfold", "holdout", "cross"):
        raise Fer3dError(f"{path}: kind must be kfold, holdout or cross, not {protocol.kind!r}")
    return protocol


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
        if _UNSAFE.search(item.sample_id):
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
    n_folds = protocol.folds if protocol.kind == "kfold" else 2
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
    content = manifest.content
    folder = inside(directory, Path(directory) / content["protocol"])
    json_path = inside(directory, folder / f"{content['version']}.json")
    csv_path = inside(directory, folder / f"{content['version']}.csv")
    sums_path = inside(directory, Path(directory) / "SHA256SUMS")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    with atomic_path(csv_path) as tmp:
        tmp.write_text(_csv(content))
    _write_sums(Path(directory), sums_path)
    return [json_path, csv_path]


def _csv(content: dict) -> str:
    folds = [
        {s: k for k, members in enumerate(r["subjects"]) for s in members}
        for r in content["repetitions"]
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sample_id", "subject", "label", *(f"fold_r{r}" for r in range(len(folds)))])
    for sample_id, info in sorted(content["samples"].items()):
        writer.writerow(
            [sample_id, info["subject"], info["label"], *(f[info["subject"]] for f in folds)]
        )
    return buffer.getvalue()


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
    if not _fits(content, _SHAPE):
        raise ManifestError(f"{path}: not a manifest of the shape `splits generate` writes")
    major = int(content["version"].split(".")[0])
    if major > supported_major:
        raise ManifestError(
            f"{path}: manifest version {content['version']} is newer than this fer3d-bench "
            f"reads ({supported_major}.x); upgrade fer3d-bench"
        )
    for sample_id in content["samples"]:
        if _UNSAFE.search(sample_id):
            raise ManifestError(f"{path}: sample id {sample_id!r} holds a path separator or '..'")
    return Manifest(content)


# What every reader of a manifest relies on; anything else is refused before it is used.
_SHAPE = {
    "kind": str,
    "classes": [str],
    "samples": {str: {"subject": str, "label": str}},
    "repetitions": [{"subjects": [[str]], "counts": [{str: int}]}],
}


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


# The subject each dataset's sample id names (README, "What each dataset's tree must look
# like"). The sources build sample ids from file names but expose no inverse, so it is here.
_CALD3R_ID = re.compile(r"[^_]+_(?P<subject>[^_]+)_[^_]+_[^_]+")  # <sex>_<subject>_<code>_<label>
_SUBJECT_IN_ID = {
    "bu3dfe": re.compile(r"(?P<subject>[FM]\d{4})_[A-Z]{2}\d{2}"),  # F0001_AN04
    "bosphorus": re.compile(r"(?P<subject>bs\d{3})_[A-Z]+_[A-Za-z0-9]+_\d+"),  # bs000_LFAU_12_0
    "cald3r": _CALD3R_ID,  # F_001_0001_anger
    "mend3s": _CALD3R_ID,
}


def subject_of(sample_id: str) -> str | None:
    """The subject a sample id names (`bu3dfe:F0001_AN04` -> `bu3dfe:F0001`), None if none."""
    dataset, _, name = sample_id.partition(":")
    pattern = _SUBJECT_IN_ID.get(dataset)
    found = pattern.fullmatch(name) if pattern else None
    return f"{dataset}:{found['subject']}" if found else None


def manifest_protocol(content: dict) -> Protocol:
    """The protocol a manifest was made from: its file if installed, else what it states.

    A manifest of a protocol of one's own (`splits generate --protocol my.toml`) still gets
    its subjects, folds and counts checked against each other by `broken_invariants`.
    """
    name = content["protocol"]
    if (PROTOCOLS_DIR / f"{name}.toml").is_file():
        return load_protocol(name)
    repetitions = content["repetitions"]
    return Protocol(
        name=name,
        version=content["version"],
        datasets=tuple(sorted({s.partition(":")[0] for s in content["samples"]})),
        classes=tuple(content["classes"]),
        kind=content["kind"],
        repetitions=len(repetitions),
        seed=content.get("seed", 0),
        folds=len(repetitions[0]["subjects"]) if repetitions else 1,
    )


def fold_name(kind: str, fold: int) -> str:
    """A fold as messages name it: `fold 3`, or `train` and `test` of a hold-out."""
    return f"fold {fold}" if kind == "kfold" else ("train", "test")[fold]


def broken_invariants(content: dict, protocol: Protocol) -> list[str]:
    """What a manifest states that its own samples, folds or its protocol contradict.

    The hash proves only that nobody edited the manifest without hashing it again, and anybody
    can. What the assignment guarantees is checked on whatever the file holds instead: each
    sample's subject is the one its id names, each subject sits in exactly one fold of every
    repetition, the stated class counts are those of the samples, and kind, seed, classes and
    number of repetitions and folds are the protocol's.
    """
    problems = []
    expected = {"kind": protocol.kind, "seed": protocol.seed, "classes": list(protocol.classes)}
    for key, want in expected.items():
        if content.get(key) != want:
            problems.append(f"{key} {content.get(key)!r} is not the protocol's {want!r}")
    for sample_id, info in sorted(content["samples"].items()):
        named = subject_of(sample_id)
        if sample_id.partition(":")[0] not in protocol.datasets:
            problems.append(f"sample {sample_id}: not of a dataset of the protocol")
        elif named != info["subject"]:
            problems.append(
                f"sample {sample_id}: subject {info['subject']}, but its id names "
                f"{named or 'no subject of a known dataset'}"
            )
        if info["label"] not in protocol.classes:
            problems.append(f"sample {sample_id}: label {info['label']!r} is not a class")
    if len(content["repetitions"]) != protocol.repetitions:
        problems.append(
            f"{len(content['repetitions'])} repetitions, not the protocol's {protocol.repetitions}"
        )
    for r, repetition in enumerate(content["repetitions"]):
        problems += _fold_problems(content, protocol, f"repetition {r}", repetition)
    return problems


def _fold_problems(content: dict, protocol: Protocol, where: str, repetition: dict) -> list[str]:
    """One repetition's folds: subject-independent, complete, and counted as stated."""
    kind, members, stated = protocol.kind, repetition["subjects"], repetition["counts"]
    n_folds = protocol.folds if kind == "kfold" else 2
    if len(members) != n_folds or len(stated) != n_folds:
        return [f"{where}: {len(members)} folds and {len(stated)} counts, not {n_folds}"]
    problems, fold_of = [], {}
    for k, subjects in enumerate(members):
        for subject in subjects:
            if subject in fold_of:
                first = fold_name(kind, fold_of[subject])
                problems.append(
                    f"{where}: subject {subject} is in {first} and {fold_name(kind, k)}"
                )
            fold_of.setdefault(subject, k)
    counts = [dict.fromkeys(content["classes"], 0) for _ in range(n_folds)]
    unassigned: dict[str, str] = {}  # subject -> its first sample
    for sample_id, info in sorted(content["samples"].items()):
        k = fold_of.get(info["subject"])
        if k is None:
            unassigned.setdefault(info["subject"], sample_id)
        elif info["label"] in counts[k]:
            counts[k][info["label"]] += 1
    for subject, sample_id in sorted(unassigned.items()):
        problems.append(f"{where}: subject {subject} (of {sample_id}) is in no fold")
    for k, (said, found) in enumerate(zip(stated, counts, strict=True)):
        if said != found:
            differ = sorted(c for c in {*said, *found} if said.get(c) != found.get(c))
            text = ", ".join(f"{c} {said.get(c)} (its samples: {found.get(c)})" for c in differ)
            problems.append(f"{where}, {fold_name(kind, k)}: stated counts {text}")
    return problems


@dataclass
class Verification:
    missing: list[str]
    extra: list[str]
    label_mismatch: list[tuple[str, str, str]]  # (sample id, manifest label, dataset label)
    count_differences: dict[str, tuple[int, int]]  # class -> (manifest, dataset)
    subject_mismatch: list[tuple[str, str, str]] = field(default_factory=list)  # as labels
    broken: list[str] = field(default_factory=list)  # the manifest's own invariants

    @property
    def ok(self) -> bool:
        differences = (self.missing, self.extra, self.label_mismatch, self.count_differences)
        return not (any(differences) or self.subject_mismatch or self.broken)

    def describe(self, limit: int = 10) -> list[str]:
        """What differs, one line per kind, at most `limit` examples each."""
        lines = []
        for name, values in (("missing", self.missing), ("extra", self.extra)):
            if values:
                more = " ..." if len(values) > limit else ""
                lines.append(f"{len(values)} {name}: {', '.join(values[:limit])}{more}")
        for sample_id, want, got in self.label_mismatch[:limit]:
            lines.append(f"label differs: {sample_id}: manifest {want}, dataset {got}")
        for sample_id, want, got in self.subject_mismatch[:limit]:
            lines.append(f"subject differs: {sample_id}: manifest {want}, dataset {got}")
        for name, (want, got) in self.count_differences.items():
            lines.append(f"count of {name}: manifest {want}, dataset {got}")
        lines += [f"manifest contradicts itself: {line}" for line in self.broken[:limit]]
        if len(self.broken) > limit:
            lines.append(f"... and {len(self.broken) - limit} more contradictions")
        return lines


def verify(manifest: Manifest, protocol: Protocol, items: list[Item]) -> Verification:
    """Check a manifest's own invariants, and compare its samples with what a dataset holds
    for the same protocol: ids, labels and subjects (a subject is what keeps folds apart)."""
    expected = manifest.content["samples"]
    present = {i.sample_id: i for i in items if uses(protocol, i)}
    subjects = {info["subject"] for info in expected.values()}
    candidates = {k: v for k, v in present.items() if v.subject in subjects}
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(candidates) - set(expected))
    mismatch = sorted(
        (s, expected[s]["label"], present[s].label)
        for s in set(expected) & set(present)
        if expected[s]["label"] != present[s].label
    )
    subjects_differ = sorted(
        (s, expected[s]["subject"], present[s].subject)
        for s in set(expected) & set(present)
        if expected[s]["subject"] != present[s].subject
    )
    counts = {}
    for c in protocol.classes:
        a = sum(1 for v in expected.values() if v["label"] == c)
        b = sum(1 for v in candidates.values() if v.label == c)
        if a != b:
            counts[c] = (a, b)
    broken = broken_invariants(manifest.content, protocol)
    return Verification(missing, extra, mismatch, counts, subjects_differ, broken)


def bu3dfe_catalogue() -> list[Item]:
    """Every BU-3DFE sample, from its published naming scheme alone (no files needed)."""
    codes = load_label_map().codes["bu3dfe"]
    items = []
    for subject in BU3DFE.subjects:
        for ex, label in sorted(codes.items()):
            levels = (0,) if label == "neutral" else BU3DFE.intensities
            for level in levels:
                items.append(
                    Item(
                        f"bu3dfe:{subject}_{ex}{level:02d}",
                        f"bu3dfe:{subject}",
                        "bu3dfe",
                        label,
                        level,
                        subject[0],
                    )
                )
    return items


def items_from_h5(path: Path) -> list[Item]:
    with H5Dataset(path) as data:
        return items_of(data)


def items_of(data: H5Dataset) -> list[Item]:
    """The items of an open merged file (for callers that read its fingerprint too)."""
    intensity, sex = data.column("intensity"), data.column("sex")
    return [
        Item(s, str(subj), str(d), data.classes[int(lab)], int(i), str(x))
        for s, subj, d, lab, i, x in zip(
            data.sample_ids,
            data.subjects,
            data.datasets,
            data.labels,
            intensity,
            sex,
            strict=True,
        )
    ]


def items_from_root(root: Path, source: str) -> list[Item]:
    scan = open_source(source, root).scan()
    return [
        Item(s.sample_id, s.subject, s.dataset, s.label, s.intensity, s.sex or "")
        for s in scan.samples
    ]


def fold_table(manifest: Manifest, repetition: int = 0) -> str:
    """Per-fold class counts of one repetition, as text."""
    content = manifest.content
    rep = content["repetitions"][repetition]
    classes = content["classes"]
    header = (
        f"{'fold':>6} {'subjects':>8} " + " ".join(f"{c[:9]:>9}" for c in classes) + "    total"
    )
    lines = [
        f"{content['protocol']} {content['version']} ({content['kind']}), repetition {repetition}"
        f" of {len(content['repetitions'])}",
        header,
    ]
    names = ["train", "test"] if content["kind"] != "kfold" else None
    for k, (members, counts) in enumerate(zip(rep["subjects"], rep["counts"], strict=True)):
        label = names[k] if names else str(k)
        lines.append(
            f"{label:>6} {len(members):>8} "
            + " ".join(f"{counts[c]:>9}" for c in classes)
            + f"  {sum(counts.values()):>7}"
        )
    return "\n".join(lines)


def fold_test_subjects(content: dict, repetition: int, fold: int) -> set[str]:
    """The test subjects of one fold of one repetition of a manifest (of a hold-out or cross
    split, its second group); ManifestError when the manifest has no such fold."""
    if not 0 <= repetition < len(content["repetitions"]):
        raise ManifestError(f"repetition {repetition} does not exist in {content['protocol']}")
    groups = content["repetitions"][repetition]["subjects"]
    test_group = fold if content["kind"] == "kfold" else 1
    if not 0 <= test_group < len(groups):
        raise ManifestError(f"fold {fold} does not exist in {content['protocol']}")
    return set(groups[test_group])


def fold_indices(manifest: Manifest, data, repetition: int = 0, fold: int = 0):
    """(train, test) indices into an H5Dataset for one fold of one repetition of a manifest.

    Raises ManifestError when the dataset lacks samples the manifest names (verify first).
    """
    content = manifest.content
    test_subjects = fold_test_subjects(content, repetition, fold)
    missing = [s for s in content["samples"] if s not in data]
    if missing:
        raise ManifestError(
            f"the dataset lacks {len(missing)} samples the manifest names (first: {missing[0]}); "
            "run `fer3d-bench splits verify`"
        )
    train, test = [], []
    for sample_id, info in sorted(content["samples"].items()):
        (test if info["subject"] in test_subjects else train).append(data.index_of(sample_id))
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)
