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
from fer3d_bench.io import atomic_path
from fer3d_bench.records.io import RecordError, RecordNotFound, read_json, read_toml
from fer3d_bench.resources import manifests_dir, protocols_dir
from fer3d_bench.sources import BU3DFE, open_source
from fer3d_bench.taxonomy import load_label_map

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
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.toml"
    try:
        data = read_toml(path, what="protocol")
    except RecordNotFound:
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise Fer3dError(f"{path}: no such protocol (known: {known})") from None
    tuples = ("datasets", "classes", "intensities", "balance", "train_datasets", "test_datasets")
    for key in tuples:
        if key in data:
            data[key] = tuple(data[key])
    try:
        protocol = Protocol(**data)
    except TypeError as exc:
        raise Fer3dError(f"{path}: {exc}") from None
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
    """<dir>/<protocol>/<version>.json and .csv, then refresh <dir>/SHA256SUMS."""
    content = manifest.content
    folder = directory / content["protocol"]
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{content['version']}.json"
    csv_path = folder / f"{content['version']}.csv"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    with atomic_path(csv_path) as tmp:
        tmp.write_text(_csv(content))
    _write_sums(directory)
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


def _write_sums(directory: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(directory).as_posix()}"
        for p in sorted(directory.glob("*/*.*"))
        if p.suffix in (".json", ".csv")
    ]
    with atomic_path(directory / "SHA256SUMS") as tmp:
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
    major = int(str(content.get("version", "0")).split(".")[0])
    if major > supported_major:
        raise ManifestError(
            f"{path}: manifest version {content['version']} is newer than this fer3d-bench "
            f"reads ({supported_major}.x); upgrade fer3d-bench"
        )
    for sample_id in content["samples"]:
        if _UNSAFE.search(sample_id):
            raise ManifestError(f"{path}: sample id {sample_id!r} holds a path separator or '..'")
    return Manifest(content)


@dataclass
class Verification:
    missing: list[str]
    extra: list[str]
    label_mismatch: list[tuple[str, str, str]]  # (sample id, manifest label, dataset label)
    count_differences: dict[str, tuple[int, int]]  # class -> (manifest, dataset)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.label_mismatch or self.count_differences)

    def describe(self, limit: int = 10) -> list[str]:
        """What differs, one line per kind, at most `limit` examples each."""
        lines = []
        for name, values in (("missing", self.missing), ("extra", self.extra)):
            if values:
                more = " ..." if len(values) > limit else ""
                lines.append(f"{len(values)} {name}: {', '.join(values[:limit])}{more}")
        for sample_id, want, got in self.label_mismatch[:limit]:
            lines.append(f"label differs: {sample_id}: manifest {want}, dataset {got}")
        for name, (want, got) in self.count_differences.items():
            lines.append(f"count of {name}: manifest {want}, dataset {got}")
        return lines


def verify(manifest: Manifest, protocol: Protocol, items: list[Item]) -> Verification:
    """Compare a manifest's samples with what a dataset holds for the same protocol."""
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
    counts = {}
    for c in protocol.classes:
        a = sum(1 for v in expected.values() if v["label"] == c)
        b = sum(1 for v in candidates.values() if v.label == c)
        if a != b:
            counts[c] = (a, b)
    return Verification(missing, extra, mismatch, counts)


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


def fold_indices(manifest: Manifest, data, repetition: int = 0, fold: int = 0):
    """(train, test) indices into an H5Dataset for one fold of one repetition of a manifest.

    Raises ManifestError when the dataset lacks samples the manifest names (verify first).
    """
    content = manifest.content
    if not 0 <= repetition < len(content["repetitions"]):
        raise ManifestError(f"repetition {repetition} does not exist in {content['protocol']}")
    groups = content["repetitions"][repetition]["subjects"]
    test_group = fold if content["kind"] == "kfold" else 1
    if not 0 <= test_group < len(groups):
        raise ManifestError(f"fold {fold} does not exist in {content['protocol']}")
    test_subjects = set(groups[test_group])
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
