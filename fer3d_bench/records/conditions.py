"""The conditions a number was obtained under, as data: what decides whether two numbers compare.

An accuracy means little without them. Folds dealt by sample put the same person in train and
test; an epoch picked on the test fold is an optimistic choice; tuning on subjects that other
folds test has seen those folds; another manifest is other data. Every result we write carries
its conditions (run.json, result.json, report.json, scored submissions), and so does every
published row (`published.toml`, each fact with its source). `differences` names what keeps two
numbers from lining up, in words a reader sees beside them.

A fact nobody stated is `NOT_STATED`, never a guess: a submission that does not say how its
epoch was chosen, another paper that does not say how its folds were dealt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from fer3d_bench.records.io import Fields

NOT_STATED = "not stated"
UNITS = ("subject", "sample")  # what folds are dealt by
SELECTIONS = ("last", "best-test")  # how the reported epoch was chosen
OPTIMISTIC = "best-test"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# what a reader is told when two numbers differ in one condition
_UNIT_WORDS = {
    "subject": "folds by subject (no person in both train and test)",
    "sample": "folds by sample: the same person in train and test",
}
_SELECTION_WORDS = {
    "last": "the last epoch",
    "best-test": "the epoch with the best test accuracy (optimistic: chosen on the test fold)",
}


@dataclass
class Conditions:
    """What a number was obtained under. Every field may be `NOT_STATED` (or None, for the
    counts): a published row or a submission says only what its authors said.

    `data` names the data: a manifest's sha256, or words ("60 of the 100 BU-3DFE subjects,
    drawn once, never published"). `published_manifest` says whether it is the manifest
    fer3d-bench publishes for its protocol (None: not known). `test_seen` is "no", or says
    what choice saw the test folds. `sources` maps a field to where the fact comes from (a
    section of a paper, a file and line of code), for published rows.
    """

    unit: str = NOT_STATED
    epoch_selection: str = NOT_STATED
    repetitions: int | str | None = None  # repetitions actually run (or as stated)
    folds: int | str | None = None  # folds per repetition actually run (or as stated)
    epochs: int | str | None = None
    input_size: int | str | None = None
    weights: str = NOT_STATED  # "none (trained from scratch)", a known file's name, ...
    test_seen: str = NOT_STATED
    data: str = NOT_STATED
    published_manifest: bool | None = None
    subjects: int | None = None
    samples: int | None = None
    sources: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def optimistic(self) -> bool:
        """Whether the reported epoch was chosen on the test fold."""
        return self.epoch_selection == OPTIMISTIC

    @property
    def leaky(self) -> bool:
        """Whether the same person may be in train and test (folds dealt by sample)."""
        return self.unit == "sample"

    def words(self) -> str:
        """One line for a table: how folds were dealt, the epoch, the scale, the weights."""
        parts = [_UNIT_WORDS.get(self.unit, f"folds dealt by: {self.unit}")]
        parts.append("epoch: " + _SELECTION_WORDS.get(self.epoch_selection, self.epoch_selection))
        if self.repetitions is not None or self.folds is not None:
            parts.append(
                f"{_counted(self.repetitions, 'repetition')} × {_counted(self.folds, 'fold')}"
            )
        parts.append(
            f"{_counted(self.epochs, 'epoch')}, input "
            + (f"{_shown(self.input_size)} px" if self.input_size is not None else NOT_STATED)
        )
        parts.append(f"pretrained weights: {self.weights}")
        parts.append(f"test folds seen by a choice: {self.test_seen}")
        parts.append(f"data: {self.data_words()}")
        return "; ".join(parts)

    def data_words(self) -> str:
        """The data: the manifest (published or not) and its size, or what was stated."""
        if self.published_manifest is None:
            size = self._size()
            return f"{self.data}{f' ({size})' if size else ''}"
        which = (
            "the published manifest" if self.published_manifest else "not the published manifest"
        )
        size = self._size()
        return f"{which}{f', {size}' if size else ''} (sha256 {self.data[:12]}…)"

    def _size(self) -> str:
        counts = [(self.subjects, "subjects"), (self.samples, "samples")]
        return ", ".join(f"{n:,} {noun}" for n, noun in counts if n is not None)

    def differences(self, other: Conditions) -> list[str]:
        """What keeps a number under these conditions from lining up with one under `other`,
        in words; empty when they compare. A fact either side does not state is a difference:
        nobody can say the two are alike."""
        out = []
        for name, words in (("unit", _UNIT_WORDS), ("epoch_selection", _SELECTION_WORDS)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine == NOT_STATED or theirs == NOT_STATED:
                label = "how folds were dealt" if name == "unit" else "how the epoch was chosen"
                out.append(f"{label} not stated")
            elif mine != theirs:
                out.append(f"{words[mine]} vs {words[theirs]}")
        if _seen(self.test_seen) != _seen(other.test_seen):
            out.append(f"test folds seen: {self.test_seen} vs {other.test_seen}")
        data = self._other_data(other)
        if data:
            out.append(data)
        return out

    def _other_data(self, other: Conditions) -> str:
        """Words for data that differ, or "": a manifest that is not the published one, two
        manifests (sha256) that differ, or data named in words that differ from ours ("60 of
        the 100 subjects, drawn once" is not a manifest anybody can check). Two numbers on
        one manifest have the same data, published or not."""
        if self.data == other.data and self.data != NOT_STATED:
            return ""
        if self.published_manifest is False or other.published_manifest is False:
            return "other data: not the published manifest"
        if NOT_STATED in (self.data, other.data):
            return ""
        if _SHA256.fullmatch(self.data) and _SHA256.fullmatch(other.data):
            return "other data: different manifests"
        return f"other data: {self.data_words()} vs {other.data_words()}"

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: object, path: Path | str, where: str = "conditions") -> Conditions:
        read = Fields(path, data, where)
        count = {"null": True, "optional": True}
        return cls(
            unit=read.string("unit", optional=True, default=NOT_STATED),
            epoch_selection=read.string("epoch_selection", optional=True, default=NOT_STATED),
            repetitions=_count(read, "repetitions"),
            folds=_count(read, "folds"),
            epochs=_count(read, "epochs"),
            input_size=_count(read, "input_size"),
            weights=read.string("weights", optional=True, default=NOT_STATED),
            test_seen=read.string("test_seen", optional=True, default=NOT_STATED),
            data=read.string("data", optional=True, default=NOT_STATED),
            published_manifest=read.get(
                "published_manifest",
                lambda v: v is None or isinstance(v, bool),
                "true, false or null",
                optional=True,
            ),
            subjects=read.integer("subjects", min=0, **count),
            samples=read.integer("samples", min=0, **count),
            sources=read.get(
                "sources",
                lambda v: isinstance(v, dict) and all(isinstance(s, str) for s in v.values()),
                "an object of strings",
                optional=True,
                default={},
            ),
            extra=read.extra(cls),
        )


def _count(read: Fields, key: str) -> int | str | None:
    """A count as a number, or in words where a paper gives it so ("100 stated; 10 in code")."""
    return read.get(
        key,
        lambda v: (
            v is None
            or isinstance(v, str)
            or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        ),
        "a non-negative integer, a string or null",
        optional=True,
    )


def _counted(value, noun: str) -> str:
    """ "1 repetition", "5 folds", "repetitions: not stated", or a count stated in words."""
    if value is None or value == NOT_STATED:
        return f"{noun}s: {NOT_STATED}"
    if isinstance(value, int):
        return f"{value:,} {noun}" + ("" if value == 1 else "s")
    return f"{noun}s: {value}"


def _shown(value) -> str:
    return NOT_STATED if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _seen(value: str) -> str:
    """'no', 'yes' or 'not stated': what `differences` compares of `test_seen`."""
    if value == NOT_STATED:
        return NOT_STATED
    return "no" if value.startswith("no") else "yes"
