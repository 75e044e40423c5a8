"""The leaderboard command: a static HTML page of run folders and scored submissions."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench.leaderboard import write_leaderboard


@click.command("leaderboard")
@click.argument(
    "folders", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False)
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Folder of the page (index.html)."
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder every row is compared with [default: the first folder].",
)
def leaderboard(folders, out, baseline) -> None:
    """A self-contained HTML page of the runs' and submissions' report.json, one table per
    protocol: each row against the baseline, its conditions and provenance, and the published
    rows apart. Opens from disk; fetches nothing."""
    page = write_leaderboard(list(folders), out, baseline)
    click.echo(f"leaderboard: {page}")
