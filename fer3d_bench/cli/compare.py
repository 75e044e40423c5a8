"""The compare command: paired comparison of run folders and scored submissions."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench.compare import compare_runs, format_comparison
from fer3d_bench.io import output_folder
from fer3d_bench.records.io import write_json


@click.command("compare")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
)
@click.option(
    "--resamples",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Resamples of the subject bootstrap.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    help="The variant compared in each folder, once per DIR in their order [default: a "
    "folder's only variant, else full].",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the comparison as JSON here.",
)
def compare(folders, resamples, seed, variants, json_path) -> None:
    """Compare each run folder (or scored submission) after the first with the first, fold by
    fold on the same manifest: mean accuracy and macro-F1, their differences with 95% intervals
    and p-values, and a subject bootstrap of the pooled accuracy difference."""
    comparison = compare_runs(
        list(folders), resamples=resamples, seed=seed, variants=list(variants) or None
    )
    click.echo(format_comparison(comparison))
    if json_path is not None:
        output_folder(json_path.parent)
        write_json(json_path, comparison.to_json(), strict=True)
        click.echo(f"comparison: {json_path}")
