"""The report command, and the report as every command that ends in one prints it."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench import splits as sp
from fer3d_bench.pipeline.score import score as run_score
from fer3d_bench.report import ReportPaths, write_report
from fer3d_bench.report.tables import format_tables


def print_report(paths: ReportPaths) -> None:
    click.echo("")
    click.echo(format_tables(paths.report))
    click.echo(f"report: {paths.markdown} and {paths.json}; figures in {paths.markdown.parent}")


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report(run_dir) -> None:
    """Aggregate a run folder's fold results into report.md, report.json, predictions.csv and
    figures."""
    print_report(write_report(run_dir))


@click.command("score")
@click.option("--protocol", required=True, help="Protocol name.")
@click.option(
    "--predictions",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="CSV or JSON: repetition, fold, sample_id, predicted (a class name) per test sample; "
    "optionally score:CLASS columns.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Report folder.")
@click.option(
    "--manifests",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of <protocol>/<version>.json manifests [default: the published data_manifests/].",
)
@click.option("--model", help="Your model's name, shown as the row of the report (as given).")
@click.option("--url", help="Where your model or paper is (as given).")
@click.option("--description", help="Your own description of the model (as given).")
@click.option("--variant", default="full", show_default=True, help="Of a file of several.")
def score(protocol, predictions, out, manifests, model, url, description, variant) -> None:
    """Score anyone's predictions exactly as evaluate scores ours: checked against the
    protocol's manifest (every test sample of a scored fold once, no training sample, known ids
    and classes), aggregated by the protocol's rule, reported beside the published rows."""
    given = {"model": model, "url": url, "description": description}
    paths = run_score(
        protocol,
        predictions,
        out,
        manifests=manifests or sp.MANIFESTS_DIR,
        submission={k: v for k, v in given.items() if v},
        variant=variant,
    )
    print_report(paths)
