"""The folders a leaderboard is made of, each read from its report.json by the one hardened
reader (`records.report`): a damaged file is refused in one line that names it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from fer3d_bench.errors import ReportError
from fer3d_bench.records.group import ReportGroup
from fer3d_bench.records.job import FULL
from fer3d_bench.records.report import Report, read_report

REPORT = "report.json"


@dataclass(frozen=True)
class Entry:
    """One folder given: a run fer3d-bench trained (evaluate, reproduce) or scored predictions."""

    folder: Path
    report: Report

    @property
    def submitted(self) -> bool:
        """Whether it scores someone else's predictions (`fer3d-bench score`)."""
        return self.report.run.submission is not None

    @property
    def name(self) -> str:
        """The folder's own name (of the folder itself where it was given as `.`)."""
        return self.folder.resolve().name

    @property
    def label(self) -> str:
        """What its rows are called: the submitter's model as given, else the run's name."""
        if self.submitted:
            model = self.report.run.submission.get("model")
            if isinstance(model, str) and model.strip():
                return model
        return self.report.run.name or self.name

    def groups(self) -> list[ReportGroup]:
        """The groups it puts on the board: the reference model's ("full") of a trained run,
        every group of scored predictions (one variant, whichever was scored)."""
        if self.submitted:
            return list(self.report.groups)
        return [g for g in self.report.groups if g.variant == FULL]


def read_entry(folder: Path | str) -> Entry:
    """The folder's report.json, read; ReportError in one line when the folder or the file is
    missing, RecordError (naming the file) when it is damaged."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: not a folder (give a run folder or a scored folder)")
    path = folder / REPORT
    if not path.exists() and not path.is_symlink():
        command = shlex.quote(str(folder))
        raise ReportError(
            f"{folder}: holds no {REPORT}; write it with `fer3d-bench report {command}`"
        )
    return Entry(folder, read_report(path))


def read_entries(folders: list[Path]) -> list[Entry]:
    """Each folder's entry, in the order given; a folder given twice is refused (its rows
    would appear twice, as if two results agreed)."""
    seen: dict[Path, Path] = {}
    for folder in map(Path, folders):
        same = seen.setdefault(folder.resolve(), folder)
        if same is not folder:
            raise ReportError(f"{folder}: given twice (also as {same})")
    return [read_entry(folder) for folder in folders]
