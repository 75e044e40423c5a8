"""A run folder's report.md, report.json and figures, each written atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.io import atomic_path
from fer3d_bench.records.report import Report, write_report_json
from fer3d_bench.report.build import build_report
from fer3d_bench.report.figures import write_figures
from fer3d_bench.report.load import load_run
from fer3d_bench.report.markdown import format_markdown
from fer3d_bench.report.published import load_published, load_tables


@dataclass
class ReportPaths:
    markdown: Path
    json: Path
    figures: list[Path]
    report: Report | None = field(default=None)  # what report.json holds


def write_report(run_dir: Path) -> ReportPaths:
    """report.md, report.json and the figures of an evaluation run folder, each atomically."""
    run = load_run(Path(run_dir))
    report = build_report(run, load_published(), load_tables())
    figures = write_figures(run, report)
    json_path, md_path = run.path / "report.json", run.path / "report.md"
    write_report_json(json_path, report)
    with atomic_path(md_path) as tmp:
        tmp.write_text(format_markdown(report), encoding="utf-8")
    return ReportPaths(markdown=md_path, json=json_path, figures=figures, report=report)
