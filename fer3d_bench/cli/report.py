"""The report command, and the report as every command that ends in one prints it."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench import splits as sp
from fer3d_bench.pipeline.score import score as run_score
from fer3d_bench.records.conditions import SELECTIONS
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
@click.option(
    "--epoch-selection",
    type=click.Choice(SELECTIONS),
    help="How each fold's predictions were chosen: the last epoch, or the epoch with the best "
    "test accuracy (optimistic). Absent: not stated.",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), help="Epochs trained per fold. Absent: not stated."
)
@click.option(
    "--input-size",
    type=click.IntRange(min=1),
    help="Input size in pixels the model saw. Absent: not stated.",
)
@click.option(
    "--weights",
    help="The pretrained weights the model started from, in words (e.g. 'none', "
    "'HSEmotion enet_b2_7'). Absent: not stated.",
)
@click.option(
    "--test-seen",
    help="Whether any choice (hyperparameters, epoch, early stopping) saw the test folds: 'no', "
    "or what saw them. Absent: not stated.",
)
def score(
    protocol,
    predictions,
    out,
    manifests,
    model,
    url,
    description,
    variant,
    epoch_selection,
    epochs,
    input_size,
    weights,
    test_seen,
) -> None:
    """Score anyone's predictions exactly as evaluate scores ours: checked against the
    protocol's manifest (every test sample of a scored fold once, no training sample, known ids
    and classes), aggregated by the protocol's rule, reported beside the published rows with
    the conditions you state (how folds were dealt is the manifest's; what you leave out is
    reported as not stated)."""
    given = {"model": model, "url": url, "description": description}
    stated = {
        "epoch_selection": epoch_selection,
        "epochs": epochs,
        "input_size": input_size,
        "weights": weights,
        "test_seen": test_seen,
    }
    paths = run_score(
        protocol,
        predictions,
        out,
        manifests=manifests or sp.MANIFESTS_DIR,
        submission={k: v for k, v in given.items() if v},
        variant=variant,
        conditions=stated,
    )
    print_report(paths)
