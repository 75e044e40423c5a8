"""report.json: a run's aggregates per (variant, protocol), beside the published rows.

Byte-stable for the same inputs: written with sorted keys and no timestamps of its own (the
run's are copied from run.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.records.group import ReportGroup
from fer3d_bench.records.io import (
    Fields,
    SchemaMismatch,
    dict_of,
    is_dict,
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
            published=read.get(
                "published", dict_of(list_of(is_dict)), "an object of lists of published rows"
            ),
            timings=read.object("timings"),
            figures=read.array("figures", is_str, "paths"),
            experiment=read.object("experiment", null=True, optional=True),
            extra=read.extra(cls, also=(*_KEYS, "schema", "experiment")),
        )


def read_report(path: Path) -> Report:
    path = Path(path)
    return Report.from_json(read_json(path, what="report"), path)


def write_report_json(path: Path, report: Report) -> Path:
    return write_json(path, report.to_json(), strict=True)
