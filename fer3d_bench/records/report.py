"""report.json: a run's aggregates per (variant, protocol), beside the published rows.

Byte-stable for the same inputs: written with sorted keys and no timestamps of its own (the
run's are copied from run.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.records.io import SchemaMismatch, read_json, write_json
from fer3d_bench.records.run import RunInfo

REPORT_SCHEMA = "fer3d-bench/report/1"
_KEYS = ("run", "groups", "published", "timings", "figures")


@dataclass
class Report:
    run: RunInfo
    groups: list[dict]  # one per (variant, protocol): title, truncation, aggregate, figures
    published: dict[str, list[dict]]  # protocol -> published rows with citations
    timings: dict = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)  # relative to the run folder
    experiment: dict | None = None  # `reproduce`: the paper's table, its rows beside ours

    def full(self) -> list[dict]:
        """The reference model's groups, one per protocol."""
        return [g for g in self.groups if g["variant"] == "full"]

    def to_json(self) -> dict:
        return {
            "schema": REPORT_SCHEMA,
            "run": self.run.to_json(),
            "groups": self.groups,
            "published": self.published,
            "timings": self.timings,
            "figures": self.figures,
            **({"experiment": self.experiment} if self.experiment else {}),
        }

    @classmethod
    def from_json(cls, data: dict, path: Path) -> Report:
        if data.get("schema") != REPORT_SCHEMA:
            raise SchemaMismatch(
                path, f"expected schema {REPORT_SCHEMA!r}, found {data.get('schema')!r}"
            )
        missing = [key for key in _KEYS if key not in data]
        if missing:
            raise SchemaMismatch(path, f"report lacks {missing}")
        return cls(
            run=RunInfo.from_json(data["run"], path),
            groups=data["groups"],
            published=data["published"],
            timings=data["timings"],
            figures=data["figures"],
            experiment=data.get("experiment"),
        )


def read_report(path: Path) -> Report:
    path = Path(path)
    return Report.from_json(read_json(path, what="report"), path)


def write_report_json(path: Path, report: Report) -> Path:
    return write_json(path, report.to_json(), strict=True)
