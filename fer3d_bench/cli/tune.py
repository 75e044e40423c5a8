"""`tune`: random search of the paper's hyperparameters on one fold's training subjects.

The work is imported when the command runs (through importlib, as the command registry does),
so `fer3d-bench tune --help` waits neither for optuna nor for torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from fer3d_bench.cli.cost import paper_on_cpu_note
from fer3d_bench.cli.options import dataset_file, epochs_option, preset_option, training_options
from fer3d_bench.splits import MANIFESTS_DIR
from fer3d_bench.tune import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S

at_least_one = click.IntRange(min=1)


@click.command("tune")
@dataset_file
@click.option("--protocol", required=True, help="Protocol name (or .toml file).")
@click.option(
    "--manifests",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of <protocol>/<version>.json manifests [default: the published data_manifests/].",
)
@click.option("--trials", type=at_least_one, required=True, help="COMPLETE trials in all.")
@click.option(
    "--storage",
    required=True,
    help="Optuna storage shared by the workers: an RDB URL (sqlite:///study.db) or "
    "journal:PATH (a log file, for shared file systems without working locks).",
)
@click.option("--study", help="Study name [default: <protocol>-<preset>-r<rep>-f<fold>].")
@preset_option
@epochs_option
@click.option("--repetition", default=0, show_default=True)
@click.option("--fold", default=0, show_default=True, help="Test fold, never seen while tuning.")
@click.option(
    "--inner-folds",
    default=3,
    show_default=True,
    help="Validation folds made of the fold's training subjects.",
)
@click.option("--seed", default=0, show_default=True, help="Draws and inner folds.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The best trial, as a TOML file for `evaluate --config`.",
)
@click.option(
    "--work",
    type=click.Path(path_type=Path, file_okay=False),
    help="Trials' training folders [default: <out stem>-trials/ beside --out].",
)
@click.option(
    "--heartbeat-interval",
    type=at_least_one,
    default=HEARTBEAT_INTERVAL_S,
    show_default=True,
    help="Seconds between a running trial's heartbeats.",
)
@click.option(
    "--grace-period",
    type=at_least_one,
    default=GRACE_PERIOD_S,
    show_default=True,
    help="Seconds without a heartbeat after which a trial counts as lost: failed, and its "
    "params queued again.",
)
@training_options
def tune(dataset, protocol, manifests, preset, heartbeat_interval, grace_period, **options) -> None:
    """Random search (Optuna) for batch size, learning rates, weight decay, lambda1, lambda2 and
    S on one fold's training subjects, split into subject-independent validation folds; the
    fold's test subjects are never seen. Workers sharing --storage and --study share the
    search; a killed one's trial is retried. Writes the best trial to OUT."""
    study = importlib.import_module("fer3d_bench.tune.study")
    storage = importlib.import_module("fer3d_bench.tune.storage")
    spec = study.TuneSpec(
        dataset=dataset,
        protocol=protocol,
        manifests=manifests or MANIFESTS_DIR,
        preset=preset or "paper",
        heartbeat=storage.Heartbeat(heartbeat_interval, grace_period),
        **options,
    )
    note = paper_on_cpu_note(spec.preset, spec.environment.placement, spec.dataset, spec.epochs)
    if note:  # tune says nothing before its first trial ends: said here, before it starts
        click.echo(note)
    study.tune(spec, echo=click.echo)
