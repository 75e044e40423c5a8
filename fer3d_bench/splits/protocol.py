"""Protocol files: `protocols/<name>.toml`, one benchmark protocol each, versioned.

A protocol's `[train]` table (the paper's training settings for it) is kept here as the file
has it: the training side validates it where it reads it (`train.config.protocol_train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.errors import Fer3dError
from fer3d_bench.names import UnsafeName, checked_name, checked_version
from fer3d_bench.records.io import RecordNotFound, read_toml
from fer3d_bench.resources import protocols_dir

PROTOCOLS_DIR = protocols_dir()
KINDS = ("kfold", "holdout", "cross")
UNITS = ("subject", "sample")  # what a protocol deals into folds


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
    # the protocol name the draw ranks subjects under (None: its own), so that a protocol can
    # draw the very subjects another one draws (bu3dfe-legacy-by-sample those of bu3dfe-legacy)
    select_as: str | None = None
    intensities: tuple[int, ...] | None = None
    test_fraction: float = 0.2
    balance: tuple[str, ...] = ()
    # "subject": every sample of a person in one fold (the benchmark); "sample": each sample
    # dealt on its own, as the paper's code does, so a person trains and tests (to measure that)
    unit: str = "subject"
    train_datasets: tuple[str, ...] = ()
    test_datasets: tuple[str, ...] = ()
    # the [train] table as the file holds it, as sorted (key, value) pairs (a sub-table's value
    # as its own pairs); it goes onto the `paper` preset and never into a manifest
    train: tuple[tuple[str, object], ...] = ()
    source: str = field(default="", compare=False)  # the file it was read from, for messages

    @property
    def train_table(self) -> dict:
        """The [train] table as the file holds it (sub-tables as dicts)."""
        return {k: dict(v) if _is_pairs(v) else v for k, v in self.train}

    @property
    def folds_per_repetition(self) -> int:
        """The folds a repetition is trained and tested as: a hold-out or cross split is one."""
        return self.folds if self.kind == "kfold" else 1

    @property
    def groups(self) -> int:
        """The groups a repetition deals its units into: k folds, or train and test."""
        return self.folds if self.kind == "kfold" else 2

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


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
        data["train"] = _pairs(data["train"])
    if "source" in data:
        raise Fer3dError(f"{path}: unexpected key 'source'")
    try:
        protocol = Protocol(**data, source=str(path))
    except TypeError as exc:
        raise Fer3dError(f"{path}: {exc}") from None
    checked_name(protocol.name, "protocol name", path)
    checked_version(protocol.version, "protocol version", path)
    if path.stem != protocol.name:
        raise Fer3dError(
            f"{path}: the file is named {path.stem!r} but holds protocol {protocol.name!r}; "
            f"a protocol file must be named after its protocol ({protocol.name}.toml)"
        )
    if protocol.kind not in KINDS:
        raise Fer3dError(f"{path}: kind must be kfold, holdout or cross, not {protocol.kind!r}")
    if protocol.select_as is not None:
        checked_name(protocol.select_as, "select_as", path)
    if protocol.unit not in UNITS:
        raise Fer3dError(f"{path}: unit must be subject or sample, not {protocol.unit!r}")
    return protocol


def installed(name: str) -> bool:
    """Whether a protocol of this name ships with fer3d-bench."""
    return (PROTOCOLS_DIR / f"{name}.toml").is_file()


def _pairs(table: dict) -> tuple:
    """A TOML table as sorted (key, value) pairs, sub-tables likewise: hashable, comparable."""
    return tuple(sorted((k, _pairs(v) if isinstance(v, dict) else v) for k, v in table.items()))


def _is_pairs(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value)
