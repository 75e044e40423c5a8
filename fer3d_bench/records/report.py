"""report.json: a run's aggregates per (variant, protocol), beside the published rows.

Byte-stable for the same inputs: written with sorted keys and no timestamps of its own (the
run's are copied from run.json).

One unit throughout: every accuracy is a fraction (0.876), ours and the published rows' alike;
a published row also carries `printed`, the number as its paper prints it in percent ("87.6"),
and its `conditions`. Reports before 0.16 held published accuracies in percent and no
`printed`: they are read as fractions, `printed` the number as that file held it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from fer3d_bench.records.conditions import Conditions
from fer3d_bench.records.group import ReportGroup
from fer3d_bench.records.io import (
    Fields,
    SchemaMismatch,
    dict_of,
    is_str,
    list_of,
    read_json,
    write_json,
)
from fer3d_bench.records.job import FULL
from fer3d_bench.records.run import RunInfo

REPORT_SCHEMA = "fer3d-bench/report/1"
_KEYS = ("run", "groups", "published", "timings", "figures")


@dataclass
class Report:
    run: RunInfo
    groups: list[ReportGroup]  # one per (variant, protocol): title, truncation, aggregate...
    published: dict[str, list[dict]]  # protocol -> published rows with citations
    timings: dict = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)  # relative to the run folder
    experiment: dict | None = None  # `reproduce`: the paper's table, its rows beside ours
    extra: dict = field(default_factory=dict)  # keys of another version, kept as they were

    def full(self) -> list[ReportGroup]:
        """The reference model's groups, one per protocol."""
        return [g for g in self.groups if g.variant == FULL]

    def failed_folds(self) -> list[tuple[str, str | None]]:
        """(folder relative to the run folder, reason) of every failed fold the report counts,
        group by group: `<protocol>/<repetition>/<fold>` for the reference model,
        `ablation-<variant>/<protocol>/<repetition>/<fold>` for another variant."""
        return [failed for g in self.groups for failed in g.failed_folds()]

    def to_json(self) -> dict:
        return {
            **self.extra,
            "schema": REPORT_SCHEMA,
            "run": self.run.to_json(),
            "groups": [g.to_json() for g in self.groups],
            "published": self.published,
            "timings": self.timings,
            "figures": self.figures,
            **({"experiment": self.experiment} if self.experiment else {}),
        }

    @classmethod
    def from_json(cls, data: object, path: Path) -> Report:
        read = Fields(path, data)
        if read.data.get("schema") != REPORT_SCHEMA:
            raise SchemaMismatch(
                path, f"expected schema {REPORT_SCHEMA!r}, found {read.data.get('schema')!r}"
            )
        missing = [key for key in _KEYS if key not in read.data]
        if missing:
            raise SchemaMismatch(path, f"report lacks {missing}")
        return cls(
            run=RunInfo.from_json(read.data["run"], path, "run"),
            groups=read.each("groups", ReportGroup.from_json),
            published=_published(read),
            timings=read.object("timings"),
            figures=read.array("figures", is_str, "paths"),
            experiment=read.object("experiment", null=True, optional=True),
            extra=read.extra(cls, also=(*_KEYS, "schema", "experiment")),
        )


def _published(read: Fields) -> dict[str, list[dict]]:
    """Protocol -> its published rows, each read as this version writes it (module docstring)."""
    protocols = read.get("published", dict_of(list_of(lambda _: True)), "an object of lists")
    return {
        protocol: [
            published_row(row, read.path, f"{read.at('published')}.{protocol}[{k}]")
            for k, row in enumerate(rows)
        ]
        for protocol, rows in protocols.items()
    }


def published_row(data: object, path: Path, where: str) -> dict:
    """A published row of report.json: `accuracy` a fraction and `printed` the paper's digits;
    a row of a report before 0.16 (percent, no `printed`) converted. Its conditions, where it
    has them, are checked (`Conditions.from_json`); every other key is kept as it is."""
    read = Fields(path, data, where)
    read.string("method")
    accuracy = read.number("accuracy")
    printed = read.string("printed", optional=True)
    if read.data.get("conditions") is not None:
        Conditions.from_json(read.object("conditions"), path, read.at("conditions"))
    if printed is not None:
        if not 0 <= accuracy <= 1:
            read.fail("accuracy", f"must be a fraction from 0 to 1, found {accuracy}")
        return read.data
    exact = Decimal(repr(accuracy))
    if accuracy > 1.0:  # percent, as reports before 0.16 wrote it
        return {**read.data, "accuracy": float(exact / 100), "printed": repr(accuracy)}
    return {**read.data, "printed": format((exact * 100).normalize(), "f")}


def read_report(path: Path) -> Report:
    path = Path(path)
    return Report.from_json(read_json(path, what="report"), path)


def write_report_json(path: Path, report: Report) -> Path:
    return write_json(path, report.to_json(), strict=True)
