"""One table per protocol, as data: our rows (runs and submissions) against a baseline, and the
published rows of that protocol kept apart, each with what keeps it from comparing.

Two numbers compare only under the same conditions (`records.conditions`): a row whose
conditions differ from the baseline's says how, and published rows are never mixed with ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer3d_bench.leaderboard.deltas import Delta
from fer3d_bench.leaderboard.entries import Entry
from fer3d_bench.records.conditions import NOT_STATED, Conditions
from fer3d_bench.records.group import Aggregate, Levels, ReportGroup
from fer3d_bench.records.io import Fields
from fer3d_bench.report.conditions import group_conditions, weights_words

OPTIMISTIC = "best-test epoch: optimistic"
LEAKY = "folds by sample: the same person in train and test"
TUNED_ON_TEST = "tuned on subjects of its own test folds"


@dataclass(frozen=True)
class Score:
    """A mean and the std a reader is shown beside it (fractions), and what the std is over:
    across repetitions when there are several, else over the folds of the one."""

    mean: float | None
    std: float | None
    basis: str


@dataclass(frozen=True)
class Row:
    """One run or submission on one protocol."""

    entry: Entry
    group: ReportGroup
    conditions: Conditions
    differences: tuple[str, ...]  # what keeps it from comparing with the baseline
    flags: tuple[str, ...]  # what a reader must know of it whatever the baseline
    delta: Delta | None
    baseline: bool

    @property
    def accuracy(self) -> Score:
        return score(self.group.aggregate, self.group.aggregate.accuracy)

    @property
    def macro_f1(self) -> Score:
        return score(self.group.aggregate, self.group.aggregate.macro_f1)

    @property
    def pretrained(self) -> tuple[str, str]:
        """(short answer, the weights in words)."""
        if self.entry.submitted:
            stated = self.conditions.weights
            if stated == NOT_STATED:
                return NOT_STATED, "the submitter did not say"
            return ("no" if stated.startswith("none") else "yes"), stated
        record = self.entry.report.run.weights_record
        return ("yes" if record.get("pretrained") else "no"), weights_words(record)


@dataclass(frozen=True)
class PublishedRow:
    """A row of a paper's table: its accuracy as a fraction, as report.json holds it, and
    `printed`, the percent as the paper prints it ("87.6", never "87.60")."""

    method: str
    accuracy: float
    printed: str
    source: str
    citation: str
    protocol_as_stated: str
    conditions: Conditions | None  # None: the row states none
    differences: tuple[str, ...]


@dataclass(frozen=True)
class Board:
    """One protocol: our rows, the baseline among them, which folder it is (and why, where it
    is not the chosen one), and the published rows."""

    protocol: str
    rows: list[Row]
    baseline: Row
    baseline_note: str
    published: list[PublishedRow]

    @property
    def versions(self) -> list[str]:
        return list(dict.fromkeys(row.group.version for row in self.rows))

    def published_heading(self) -> str:
        """The words over the published rows: what they are and, where every one of them
        differs from the baseline in the same ways, those ways."""
        heading = "Published, as printed by their papers (not reproduced by fer3d-bench)"
        first = self.published[0].differences if self.published else ()
        common = [d for d in first if _in_all(d, self.published)]
        if common:
            return f"{heading}, under other conditions: {'; '.join(common)}"
        return heading


def _in_all(difference: str, rows: list[PublishedRow]) -> bool:
    return all(difference in row.differences for row in rows)


def score(aggregate: Aggregate, levels: Levels) -> Score:
    """`levels` as the report's tables show it: the std across repetitions when there are
    several, else the std over the folds of the one."""
    repetitions = aggregate.repetitions
    if len(repetitions) > 1:
        return Score(
            levels.mean, levels.std_across_repetitions, f"across {len(repetitions)} repetitions"
        )
    folds = repetitions[0].folds if repetitions else 0
    return Score(levels.mean, levels.mean_std_within_repetitions, f"over {folds} folds")


def conditions_of(entry: Entry, group: ReportGroup) -> Conditions:
    """What the group's numbers were obtained under: as report.json recorded them, else as
    its run.json allows to say."""
    if group.conditions is not None:
        return group.conditions
    return group_conditions(entry.report.run, group.protocol, group.variant)


def flags_of(conditions: Conditions) -> tuple[str, ...]:
    """What makes a number look better than it is, whatever it is compared with."""
    flags = []
    if conditions.optimistic:
        flags.append(OPTIMISTIC)
    if conditions.leaky:
        flags.append(LEAKY)
    if conditions.test_seen.startswith("yes"):
        flags.append(TUNED_ON_TEST)
    return tuple(flags)


def differences(mine: Conditions, baseline: Conditions) -> tuple[str, ...]:
    """`Conditions.differences`, as a tuple."""
    return tuple(mine.differences(baseline))


def published_rows(entries: list[Entry], protocol: str, baseline: Conditions) -> list[PublishedRow]:
    """The protocol's published rows of every report, each once (reports of one version carry
    the same rows), in the order first met; each field read through `Fields`, so a damaged
    row is refused naming the report and the row."""
    rows: dict[tuple, PublishedRow] = {}
    for entry in entries:
        path = entry.folder / "report.json"
        for k, data in enumerate(entry.report.published.get(protocol, [])):
            where = f"published.{protocol}[{k}]"
            read = Fields(path, data, where)
            stated = read.object("conditions", null=True, optional=True)
            conditions = None if stated is None else Conditions.from_json(stated, path, where)
            row = PublishedRow(
                method=read.string("method"),
                accuracy=float(read.number("accuracy")),
                printed=read.string("printed", optional=True, default=""),
                source=read.string("source", optional=True, default=NOT_STATED),
                citation=read.string("citation_text", optional=True, default=""),
                protocol_as_stated=read.string("protocol_as_stated", optional=True, default=""),
                conditions=conditions,
                differences=differences(conditions or Conditions(), baseline),
            )
            rows.setdefault((row.method, row.accuracy, row.source), row)
    return list(rows.values())


def build_boards(
    entries: list[Entry], baseline: Entry, deltas: dict[tuple[Path, str], Delta]
) -> list[Board]:
    """A board per protocol, in the order the protocols are first met (the baseline's first).

    The baseline row of a protocol is the baseline folder's; where it has none, the first
    folder's that has one, and the board says so.
    """
    ordered = [baseline, *[e for e in entries if e is not baseline]]
    protocols = list(dict.fromkeys(g.protocol for e in ordered for g in e.groups()))
    boards = []
    for protocol in protocols:
        found = [(e, g) for e in entries for g in e.groups() if g.protocol == protocol]
        base_entry, base_group = next(((e, g) for e, g in found if e is baseline), found[0])
        note = f"baseline: {base_entry.label} ({base_entry.name})"
        if base_entry is not baseline:
            note += f"; the chosen baseline {baseline.name} has no result on {protocol}"
        base_conditions = conditions_of(base_entry, base_group)
        rows = []
        for entry, group in found:
            conditions = conditions_of(entry, group)
            is_base = entry is base_entry and group is base_group
            rows.append(
                Row(
                    entry=entry,
                    group=group,
                    conditions=conditions,
                    differences=() if is_base else differences(conditions, base_conditions),
                    flags=flags_of(conditions),
                    delta=None if is_base else deltas.get((entry.folder, protocol)),
                    baseline=is_base,
                )
            )
        base_row = next(row for row in rows if row.baseline)
        published = published_rows(ordered, protocol, base_conditions)
        boards.append(Board(protocol, _ranked(rows), base_row, note, published))
    return boards


def _ranked(rows: list[Row]) -> list[Row]:
    """Best mean accuracy first, rows without one last; ties in the order given."""
    return sorted(rows, key=lambda row: (row.accuracy.mean is None, -(row.accuracy.mean or 0.0)))
