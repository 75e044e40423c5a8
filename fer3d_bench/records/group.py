"""A group of report.json, typed: one (variant, protocol), its title and its aggregate.

`to_json` gives the dict the report has always written for it: the same keys, the same values,
a key absent where it was absent. `from_json` checks what the report's readers rely on (names,
numbers, the aggregate's shape); each problem is a `SchemaMismatch` naming the file and the
place in it. Keys this version does not know are kept as they are (`extra`), at every level, so
a report written by a newer minor version survives a round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from fer3d_bench.names import checked_name
from fer3d_bench.records.conditions import Conditions
from fer3d_bench.records.io import (
    Fields,
    SchemaMismatch,
    dict_of,
    is_int,
    is_number,
    is_str,
    list_of,
    nullable,
)
from fer3d_bench.records.job import fold_folder, variant_prefix


class _Record:
    """The dataclasses below as JSON: `extra`, then their fields over it; a field of
    `ONLY_IF_SET` is left out while None, as the versions that wrote it left it out."""

    ONLY_IF_SET: ClassVar[tuple[str, ...]] = ()
    extra: dict

    def to_json(self) -> dict:
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.name in self.ONLY_IF_SET):
                continue
            data[f.name] = _plain(value)
        return {**self.extra, **data}


def _plain(value: Any) -> Any:
    if isinstance(value, _Record | Conditions):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class Spread(_Record):
    """One repetition's fold scores: their mean and sample std (None below two folds)."""

    mean: float | None
    std: float | None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path, where: str) -> Spread:
        read = Fields(path, data, where)
        return cls(
            mean=read.number("mean", null=True),
            std=read.number("std", null=True),
            extra=read.extra(cls),
        )


@dataclass
class Levels(_Record):
    """A score over the repetitions: the mean of the repetition means, the std across them,
    and the mean of the stds within them (aggregate's module docstring gives the rules)."""

    mean: float | None
    std_across_repetitions: float | None
    mean_std_within_repetitions: float | None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path, where: str) -> Levels:
        read = Fields(path, data, where)
        return cls(
            **{f.name: read.number(f.name, null=True) for f in fields(cls) if f.name != "extra"},
            extra=read.extra(cls),
        )


@dataclass
class RepetitionRow(_Record):
    """One repetition: how many of its folds are ok, and the spread of their scores."""

    repetition: int
    folds: int
    accuracy: Spread
    macro_f1: Spread
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path, where: str) -> RepetitionRow:
        read = Fields(path, data, where)
        return cls(
            repetition=read.integer("repetition", min=0),
            folds=read.integer("folds", min=0),
            accuracy=Spread.from_json(read.get("accuracy"), path, f"{where}.accuracy"),
            macro_f1=Spread.from_json(read.get("macro_f1"), path, f"{where}.macro_f1"),
            extra=read.extra(cls),
        )


@dataclass
class FoldRow(_Record):
    """One fold of the group, ok or failed; `result` is its result.json, relative to the run
    folder (set by the report, absent from an aggregate of results alone)."""

    ONLY_IF_SET = ("result",)

    repetition: int
    fold: int
    status: str
    reason: str | None
    seconds: float | None
    n: int | None
    accuracy: float | None
    macro_f1: float | None
    checkpoint: str | None
    result: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path, where: str) -> FoldRow:
        read = Fields(path, data, where)
        return cls(
            repetition=read.integer("repetition", min=0),
            fold=read.integer("fold", min=0),
            status=read.string("status"),
            reason=read.string("reason", null=True),
            seconds=read.number("seconds", null=True),
            n=read.integer("n", min=0, null=True),
            accuracy=read.number("accuracy", null=True),
            macro_f1=read.number("macro_f1", null=True),
            checkpoint=read.string("checkpoint", null=True),
            result=read.string("result", optional=True),
            extra=read.extra(cls),
        )


@dataclass
class FailedFold(_Record):
    """A fold that failed: where it is in the protocol, and why."""

    repetition: int
    fold: int
    reason: str | None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path, where: str) -> FailedFold:
        read = Fields(path, data, where)
        return cls(
            repetition=read.integer("repetition", min=0),
            fold=read.integer("fold", min=0),
            reason=read.string("reason", null=True),
            extra=read.extra(cls),
        )


@dataclass
class Confusion(_Record):
    """The confusion counts summed over the ok folds (rows true, columns predicted, in the
    order of the classes) and the same matrix row-normalised."""

    ONLY_IF_SET = ("fold_mean",)

    counts: list[list[int]]
    normalised: list[list[float]]
    # each ok fold's row-normalised matrix, averaged over the folds, as the paper's figures
    # average them (a class absent from a fold's test samples counts in no row of that fold);
    # None in reports before 0.16
    fold_mean: list[list[float | None]] | None = None
    extra: dict = field(default_factory=dict)

    def support(self) -> list[int]:
        """Each class's test samples over the ok folds."""
        return [sum(row) for row in self.counts]

    @classmethod
    def from_json(cls, data: object, path: Path, where: str, size: int) -> Confusion:
        read = Fields(path, data, where)
        square = f"a {size} x {size} matrix of"
        return cls(
            counts=read.get("counts", _matrix(size, is_int), f"{square} integers"),
            normalised=read.get("normalised", _matrix(size, is_number), f"{square} numbers"),
            fold_mean=read.get(
                "fold_mean",
                _matrix(size, nullable(is_number)),
                f"{square} numbers or nulls",
                optional=True,
            ),
            extra=read.extra(cls),
        )


@dataclass
class Aggregate(_Record):
    """One (variant, protocol)'s fold results reduced as its protocol defines it
    (report.aggregate builds it; its module docstring gives the rules)."""

    kind: str
    classes: list[str]
    folds_ok: int
    folds_failed: int
    failed: list[FailedFold]
    folds: list[FoldRow]
    repetitions: list[RepetitionRow]
    accuracy: Levels
    macro_f1: Levels
    confusion: Confusion
    recall: dict[str, float | None]  # class -> pooled recall; None for a class with no sample
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path, where: str = "aggregate") -> Aggregate:
        read = Fields(path, data, where)
        kind = read.string("kind")
        classes = read.array("classes", is_str, "strings")
        recall = read.get("recall", dict_of(nullable(is_number)), "an object of numbers or nulls")
        unknown = [c for c in classes if c not in recall]
        if unknown:
            raise SchemaMismatch(path, f"{where}.recall lacks classes {unknown}")
        return cls(
            kind=kind,
            classes=classes,
            folds_ok=read.integer("folds_ok", min=0),
            folds_failed=read.integer("folds_failed", min=0),
            failed=read.each("failed", FailedFold.from_json),
            folds=read.each("folds", FoldRow.from_json),
            repetitions=read.each("repetitions", RepetitionRow.from_json),
            accuracy=Levels.from_json(read.get("accuracy"), path, f"{where}.accuracy"),
            macro_f1=Levels.from_json(read.get("macro_f1"), path, f"{where}.macro_f1"),
            confusion=Confusion.from_json(
                read.get("confusion"), path, f"{where}.confusion", len(classes)
            ),
            recall=recall,
            extra=read.extra(cls),
        )


@dataclass
class ReportGroup(_Record):
    """One (variant, protocol) of the report: the title that names every way it falls short
    of the full protocol, its aggregate, its training time and its figures."""

    ONLY_IF_SET = ("differs_from_paper", "submitted", "conditions")

    variant: str
    protocol: str
    version: str
    kind: str
    folds_expected: int
    truncation: list[str]  # each way it falls short, in words; empty for the full protocol
    # dotted config key -> [this run's value, the paper's]; None in a report of fer3d-bench
    # before 0.10, which recorded none per group
    differs_from_paper: dict[str, list] | None
    weights: dict | None  # weights.known.weights_record; None for submitted predictions
    title: str
    aggregate: Aggregate
    seconds: float  # the sum of its folds' seconds
    figures: list[str]  # relative to the run folder
    submitted: str | None = None  # the model whose submitted predictions it scores
    # what its numbers were obtained under (records.conditions); None in reports before 0.16
    conditions: Conditions | None = None
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """(variant, protocol)."""
        return self.variant, self.protocol

    @property
    def label(self) -> str:
        return f"{self.variant} / {self.protocol}"

    @property
    def folder(self) -> str:
        """The protocol folder of its folds, relative to the run folder."""
        return f"{variant_prefix(self.variant)}{self.protocol}"

    @property
    def mean_accuracy(self) -> float | None:
        """The headline accuracy (mean of the repetition means); None without an ok fold."""
        return self.aggregate.accuracy.mean

    def failed_folds(self) -> list[tuple[str, str | None]]:
        """(folder relative to the run folder, reason) of each failed fold, in fold order:
        `bu3dfe-legacy/1/2` for the reference model, `ablation-<variant>/...` for another."""
        return [
            (fold_folder(self.variant, self.protocol, f.repetition, f.fold), f.reason)
            for f in self.aggregate.failed
        ]

    @classmethod
    def from_json(cls, data: object, path: Path, where: str = "group") -> ReportGroup:
        read = Fields(path, data, where)
        variant = checked_name(read.string("variant"), f"{where}.variant", path)
        protocol = checked_name(read.string("protocol"), f"{where}.protocol", path)
        where = read.where = f"{where} ({variant}/{protocol})"
        return cls(
            variant=variant,
            protocol=protocol,
            version=read.string("version"),
            kind=read.string("kind"),
            folds_expected=read.integer("folds_expected", min=0),
            truncation=read.array("truncation", is_str, "strings"),
            differs_from_paper=read.get(
                "differs_from_paper", dict_of(_pair), "an object of [ours, paper]", optional=True
            ),
            weights=read.object("weights", null=True, optional=True),
            title=read.string("title"),
            aggregate=Aggregate.from_json(read.get("aggregate"), path, f"{where}.aggregate"),
            seconds=read.number("seconds"),
            figures=read.array("figures", is_str, "strings"),
            submitted=read.string("submitted", optional=True),
            conditions=_conditions(read, where),
            extra=read.extra(cls),
        )


def _conditions(read: Fields, where: str) -> Conditions | None:
    value = read.object("conditions", null=True, optional=True)
    return None if value is None else Conditions.from_json(value, read.path, f"{where}.conditions")


def _pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2


def _matrix(size: int, check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    row = list_of(check)
    return lambda value: (
        isinstance(value, list)
        and len(value) == size
        and all(row(r) and len(r) == size for r in value)
    )
