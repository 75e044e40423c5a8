"""The training commands: train one fold, evaluate whole protocols, the demo."""

from __future__ import annotations

import time
from pathlib import Path

import click

from fer3d_bench.cli.cost import noted, paper_on_cpu_note
from fer3d_bench.cli.options import (
    ablation_option,
    dataset_file,
    epoch_selection_option,
    epochs_option,
    preset_option,
    stack,
    training_options,
)
from fer3d_bench.cli.report import print_report
from fer3d_bench.evaluation.cluster import MIN_TIMEOUT_MIN, SlurmOptions
from fer3d_bench.evaluation.launchers import LAUNCHERS, Launch
from fer3d_bench.evaluation.plan import EvalSpec
from fer3d_bench.experiments import experiment_names, load_experiment
from fer3d_bench.pipeline.demo import run_demo
from fer3d_bench.pipeline.evaluate import TrainSpec, train_fold
from fer3d_bench.pipeline.evaluate import evaluate as run_evaluation
from fer3d_bench.pipeline.inflation import report_inflation
from fer3d_bench.splits import MANIFESTS_DIR
from fer3d_bench.train.checkpoint import CHECKPOINT
from fer3d_bench.train.config import ConfigFile, load_config_file

SLURM = SlurmOptions()
at_least_one = click.IntRange(min=1)
launcher_option = click.option(
    "--launcher",
    type=click.Choice(list(LAUNCHERS)),
    default=next(iter(LAUNCHERS)),
    show_default=True,
    help="local: here; slurm: a submitit job array; submitit-local: submitit's local executor.",
)


@click.command("train")
@dataset_file
@click.option("--manifest", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--fold", default=0, show_default=True, help="Test fold, from 0 (hold-out: ignored).")
@click.option("--repetition", default=0, show_default=True, help="Repetition, from 0.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@preset_option
@epochs_option
@ablation_option(multiple=False)
@training_options
def train(dataset, manifest, fold, repetition, out, preset, epochs, ablation, environment) -> None:
    """Train the reference model on one fold of a manifest; resumes from OUT."""
    spec = TrainSpec(
        dataset,
        manifest,
        out,
        repetition=repetition,
        fold=fold,
        preset=preset or "paper",
        overrides={} if epochs is None else {"epochs": epochs},
        ablation=ablation,
        environment=environment.placed(progress=True),
    )
    note = paper_on_cpu_note(spec.preset, environment.placement, dataset, epochs)
    if note:  # train_fold says nothing before its first epoch: said here, before it starts
        click.echo(note)
    result = train_fold(spec)
    if result.training_left_out:
        left_out = ", ".join(result.training_left_out)
        click.echo(f"left out of training (flagged low-quality): {left_out}")
    for record in result.history:
        click.echo(
            f"epoch {record['epoch']:>3}  loss {record['loss_total']:.4f}  "
            f"train {record['train_accuracy']:.3f}  test {record['test_accuracy']:.3f}"
        )
    if not result.ok:
        raise click.ClickException(f"the fold failed: {result.reason}")
    accuracy = result.history[-1]["test_accuracy"]
    click.echo(f"test-fold accuracy {accuracy:.4f}; checkpoint {Path(out) / CHECKPOINT}")
    if result.best_test is not None:
        best = result.best_test
        click.echo(
            f"best test-fold accuracy {best['accuracy']:.4f}, epoch {best['epoch']} (optimistic: "
            "chosen on the test fold; what --epoch-selection best-test reports)"
        )


def _run_options(function):
    """What `evaluate` and `reproduce` share: where, with what, how much, and how launched."""
    return stack(
        dataset_file,
        click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder."),
        click.option(
            "--manifests",
            type=click.Path(path_type=Path, file_okay=False),
            help="Folder of <protocol>/<version>.json manifests [default: the published "
            "data_manifests/].",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="TOML: preset = ..., top-level training keys, [model] and [loss] tables (or "
            "the best configuration `fer3d-bench tune` wrote).",
        ),
        preset_option,
        epochs_option,
        epoch_selection_option,
        click.option("--repetitions", type=at_least_one, help="Run only the first N repetitions."),
        click.option("--max-folds", type=at_least_one, help="Run only the first N folds of each."),
        launcher_option,
        click.option(
            "--jobs",
            default=1,
            show_default=True,
            type=at_least_one,
            help="Folds trained at once: here (processes sharing the CPUs, and the GPU with "
            "--device cuda), or by each Slurm job on its allocation.",
        ),
        click.option(
            "--wait/--no-wait",
            default=False,
            help="slurm: wait for the jobs (saying what they do as it changes), then report.",
        ),
        click.option(
            "--wait-timeout",
            type=click.FloatRange(min=0, min_open=True),
            help="slurm: stop waiting after this many minutes (the jobs go on) [default: no "
            "limit].",
        ),
        click.option("--slurm-partition"),
        click.option(
            "--slurm-time",
            default=SLURM.timeout_min,
            show_default=True,
            help=f"Minutes per job (at least {MIN_TIMEOUT_MIN}).",
        ),
        click.option(
            "--slurm-gpus", default=SLURM.gpus_per_node, show_default=True, help="GPUs per job."
        ),
        click.option(
            "--slurm-cpus", default=SLURM.cpus_per_task, show_default=True, help="CPUs per job."
        ),
        click.option("--slurm-mem-gb", default=SLURM.mem_gb, show_default=True),
        click.option(
            "--slurm-parallel",
            default=SLURM.array_parallelism,
            show_default=True,
            help="Jobs of the array running at once.",
        ),
        training_options,
    )(function)


@click.command("evaluate")
@click.option("--protocol", "protocols", multiple=True, required=True, help="Protocol name(s).")
@ablation_option(multiple=True)
@_run_options
def evaluate(protocols, ablations, **options) -> None:
    """Train and test every fold of each protocol (resumable), then write and print the report.

    Exits with status 1 when any fold failed (diverged, or had no samples), after writing the
    report, which lists them; 0 when every fold finished, or when Slurm jobs were only submitted.
    """
    _run(protocols=protocols, ablations=ablations, **options)


@click.command("reproduce")
@click.argument("name", type=click.Choice(experiment_names()))
@_run_options
def reproduce(name, **options) -> None:
    """Run one of the paper's experiments (its table or result) and report it in the paper's
    layout, beside the published rows: its protocols, variants and the paper's settings for it
    come from fer3d_bench/experiments/NAME.toml. Resumable, like evaluate; same exit status."""
    experiment = load_experiment(name)
    _run(
        protocols=experiment.protocols,
        ablations=experiment.ablations,
        experiment=experiment.record(),
        **options,
    )


def _run(*, config_file, epochs, preset, manifests, jobs, wait, **options) -> None:
    """Plan, launch and report one spec: the one path of `evaluate` and `reproduce`."""
    loaded = load_config_file(config_file) if config_file else ConfigFile(None, {}, {})
    overrides = dict(loaded.overrides)
    if epochs is not None:
        overrides["epochs"] = epochs
    slurm = SlurmOptions(
        partition=options.pop("slurm_partition"),
        timeout_min=options.pop("slurm_time"),
        gpus_per_node=options.pop("slurm_gpus"),
        cpus_per_task=options.pop("slurm_cpus"),
        mem_gb=options.pop("slurm_mem_gb"),
        array_parallelism=options.pop("slurm_parallel"),
        wait_timeout_min=options.pop("wait_timeout"),
    )
    spec = EvalSpec(
        manifests=manifests or MANIFESTS_DIR,
        preset=preset or loaded.preset or "paper",
        overrides=overrides,
        config_source=loaded.source or None,
        **options,
    )
    note = None
    if spec.launcher == "local":  # elsewhere the device resolves where the jobs run
        placement, epochs = spec.environment.placement, overrides.get("epochs")
        note = paper_on_cpu_note(spec.preset, placement, spec.dataset, epochs)
    launch = Launch(jobs=jobs, wait=wait, slurm=slurm)
    outcome = run_evaluation(spec, launch, echo=noted(click.echo, note))
    if outcome.report is None:
        return
    print_report(outcome.report)
    if (spec.experiment or {}).get("inflation"):
        click.echo("")
        click.echo(report_inflation(spec.out, spec.experiment))
    failed = outcome.failed()
    if failed:
        click.echo(f"{len(failed)} fold(s) failed (the report lists them):", err=True)
        for line in failed:
            click.echo(f"  {line}", err=True)
        raise SystemExit(1)


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo"), show_default=True)
@click.option("--workers", default=2, show_default=True, help="Processes for sample and render.")
def demo(out, workers) -> None:
    """Everything on the generated sample: sample, render, build, splits, evaluate, report."""
    started = time.perf_counter()
    paths, tables = run_demo(out, workers=workers, echo=click.echo)
    click.echo("")
    click.echo(tables)
    click.echo(f"report: {paths.markdown}; figures in {paths.markdown.parent / 'figures'}")
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
