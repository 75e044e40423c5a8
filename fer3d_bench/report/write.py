"""A run folder's report.md, report.json, predictions.csv and figures, each written atomically.

predictions.csv holds every test sample's prediction of every finished fold, in the format
`fer3d-bench score` reads (`records.predictions`), so that our numbers can be recomputed by the
same path as anyone's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.io import atomic_path
from fer3d_bench.records.predictions import Prediction, write_predictions
from fer3d_bench.records.report import Report, write_report_json
from fer3d_bench.report.build import build_report
from fer3d_bench.report.figures import write_figures
from fer3d_bench.report.load import Run, load_run
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
    write_predictions(run.path / "predictions.csv", run_predictions(run))
    with atomic_path(md_path) as tmp:
        tmp.write_text(format_markdown(report), encoding="utf-8")
    return ReportPaths(markdown=md_path, json=json_path, figures=figures, report=report)


def run_predictions(run: Run) -> list[Prediction]:
    """Every prediction of the run's finished folds, by protocol, variant, repetition, fold, id."""
    rows = []
    for (variant, protocol), results in sorted(run.results.items(), key=lambda kv: kv[0][::-1]):
        for result in results:
            repetition, fold = result.position
            for sample_id, given in sorted(result.predictions.items()):
                rows.append(
                    Prediction(
                        0,
                        repetition,
                        fold,
                        sample_id,
                        given["pred"],
                        protocol,
                        variant,
                        dict(given.get("scores") or {}),
                    )
                )
    return rows
