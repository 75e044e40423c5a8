"""What every dataset source shares: the sample record, the scan result, the scan loop."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.errors import DatasetNotFoundError, FormatError
from fer3d_bench.taxonomy import LabelDecision, LabelMap, load_label_map

_UNSAFE_ID = re.compile(r"[/\\]|\.\.|\s")


@dataclass(frozen=True)
class SampleRecord:
    """One sample of one dataset, with every file that belongs to it (role -> path)."""

    sample_id: str  # "<dataset>:<name>", stable, no path separators
    dataset: str
    subject: str  # "<dataset>:<subject>"
    label: str
    code: str  # the dataset's own expression code
    intensity: int  # -1 where the dataset has none
    sex: str | None  # "F", "M" or None where unknown
    files: dict[str, Path]

    def __post_init__(self):
        if _UNSAFE_ID.search(self.sample_id):
            raise ValueError(f"sample id {self.sample_id!r} holds a path separator, '..' or space")


@dataclass(frozen=True)
class Found:
    """What a file name says about its sample; the same for every file of the sample."""

    dataset: str
    subject: str  # without the dataset namespace
    code: str
    decision: LabelDecision
    intensity: int = -1
    sex: str | None = None


@dataclass(frozen=True)
class Excluded:
    """A sample that was recognised but left out on purpose (its label is not mapped)."""

    sample_id: str
    code: str
    reason: str
    path: Path


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why."""

    path: Path
    reason: str


@dataclass
class ScanResult:
    """Everything a scan of one root found, sorted by sample id."""

    source: str
    root: Path
    samples: list[SampleRecord] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)  # known file kinds that are not used
    incomplete: list[tuple[str, str]] = field(default_factory=list)  # (sample id, reason)
    # what lies below the root but could not be read or entered (also in `skipped`): whatever
    # samples it holds are missing, so render-depth and build-dataset count each as a failure
    unreadable: list[Skipped] = field(default_factory=list)

    def add(self, sample_id: str, found: Found, files: dict[str, Path]) -> None:
        """Record a complete sample of a mapped class."""
        record = SampleRecord(
            sample_id=sample_id,
            dataset=found.dataset,
            subject=f"{found.dataset}:{found.subject}",
            label=found.decision.label,
            code=found.code,
            intensity=found.intensity,
            sex=found.sex,
            files=files,
        )
        self.samples.append(record)


class Source:
    """A dataset in its native tree. Subclasses declare `name`, `roles` and `required`."""

    name: str = ""
    roles: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    # dataset name (the sample id's namespace) -> the grammar of the rest of its sample ids,
    # with the subject as group `subject`: a manifest's subjects are checked against it
    sample_ids: dict[str, re.Pattern] = {}

    def __init__(self, root: Path | str, label_map: LabelMap | None = None):
        self.root = Path(root)
        self.label_map = label_map or load_label_map()
        self._verify()

    def _verify(self) -> None:
        if not self.root.exists():
            raise DatasetNotFoundError(f"{self.name}: dataset root {self.root} does not exist")
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"{self.name}: dataset root {self.root} is not a folder")

    def files(self, result: ScanResult) -> list[Path]:
        """Every regular file below the root (a link to one counts), in a fixed order (never
        the file system's). Nothing else is passed over without a word: a folder that cannot
        be listed, a link to a folder (never followed: it may loop, or lead anywhere) and a
        name that is no regular file (a link to nothing, a FIFO) go to `result.skipped` and
        `result.unreadable`."""

        def lost(path: Path, reason: str) -> None:
            result.skipped.append(Skipped(path, reason))
            result.unreadable.append(Skipped(path, reason))

        def unlisted(error: OSError) -> None:
            lost(Path(error.filename), f"folder cannot be read ({error.strerror or error})")

        found = []
        for folder, subfolders, names in os.walk(self.root, onerror=unlisted):
            for name in subfolders:
                if (path := Path(folder) / name).is_symlink():
                    lost(
                        path,
                        f"a link to a folder ({os.readlink(path)}); links are not "
                        "followed: put the folder itself here",
                    )
            for name in names:
                path = Path(folder) / name
                if path.is_file():
                    found.append(path)
                else:
                    lost(path, _not_a_file(path))
        return sorted(found)

    def scan(self, check: bool = False, progress: Callable[[Iterable], Iterable] | None = None):
        """Index the root; with `check`, also load every sample and skip those that fail."""
        result = self._index()
        result.samples.sort(key=lambda s: s.sample_id)
        result.excluded.sort(key=lambda e: e.sample_id)
        if check:
            kept = []
            for sample in progress(result.samples) if progress else result.samples:
                try:
                    self.load(sample)
                except FormatError as exc:
                    result.skipped.append(Skipped(exc.path, f"{sample.sample_id}: {exc.problem}"))
                else:
                    kept.append(sample)
            result.samples = kept
        result.skipped.sort(key=lambda s: (str(s.path), s.reason))
        result.unreadable.sort(key=lambda s: (str(s.path), s.reason))
        return result

    def _index(self) -> ScanResult:
        raise NotImplementedError

    def load(self, sample: SampleRecord):
        raise NotImplementedError

    def _group(
        self,
        result: ScanResult,
        files: dict[str, dict[str, list[Path]]],
        found: dict[str, Found],
    ) -> None:
        """Turn sample id -> role -> files into records or exclusions; skip incomplete ones.

        A sample's kind is decided before its files are checked: a scan of an excluded kind is
        counted as excluded with its reason even when a sibling file is missing.
        """
        for sample_id, by_role in sorted(files.items()):
            decision = found[sample_id].decision
            if decision.label is None:
                every = sorted(p for paths in by_role.values() for p in paths)
                main = by_role.get(self.required[0], every)[0]
                result.excluded.append(
                    Excluded(sample_id, found[sample_id].code, decision.reason, main)
                )
                continue
            doubled = {role: paths for role, paths in by_role.items() if len(paths) > 1}
            missing = [role for role in self.required if role not in by_role]
            if doubled:
                role, paths = sorted(doubled.items())[0]
                reason = f"{sample_id}: {len(paths)} files claim the role {role!r}"
            elif missing:
                reason = f"{sample_id}: no {' or '.join(missing)} file for this sample"
            else:
                first = {role: paths[0] for role, paths in by_role.items()}
                result.add(sample_id, found[sample_id], first)
                continue
            every = sorted(p for paths in by_role.values() for p in paths)
            result.skipped.extend(Skipped(p, reason) for p in every)
            result.incomplete.append((sample_id, reason))


def _not_a_file(path: Path) -> str:
    """Why a name below a dataset root that os.walk lists as no folder is not read."""
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a link to nothing that can be read ({target})"
    return "not a regular file (a FIFO, socket or device); not read"
