"""The report command, and the report as every command that ends in one prints it."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench.report import ReportPaths, write_report
from fer3d_bench.report.tables import format_tables


def print_report(paths: ReportPaths) -> None:
    click.echo("")
    click.echo(format_tables(paths.report))
    click.echo(f"report: {paths.markdown} and {paths.json}; figures in {paths.markdown.parent}")


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report(run_dir) -> None:
    """Aggregate a run folder's fold results into report.md, report.json and figures."""
    print_report(write_report(run_dir))
