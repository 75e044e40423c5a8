"""`explain`: Grad-CAM heatmaps of a trained fold (imported when the command runs, so that
`fer3d-bench explain --help` does not wait for torch)."""

from __future__ import annotations

import importlib
from pathlib import Path

import click


@click.command("explain")
@click.argument("run", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--fold", help="PROTOCOL/REP/FOLD [default: the first protocol's 0/0].")
@click.option("--variant", default="full", show_default=True)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The merged .h5 file [default: the path run.json records].",
)
@click.option("--per-class", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder inside RUN [default: RUN/figures/explain].",
)
@click.option(
    "--method",
    type=click.Choice(["gradcam", "hirescam"]),
    default="gradcam",
    show_default=True,
    help="gradcam: the paper's Grad-CAM (spatially averaged gradients); hirescam: gradient x "
    "activation cell by cell. Behind the transformer head neither is reliable (README).",
)
def explain(run, fold, variant, dataset, per_class, out, method) -> None:
    """Class-activation heatmaps over RGB and depth for the first correctly classified test
    samples of each class of one fold (the paper's Fig. 13), from its checkpoint (read as
    tensors only)."""
    work = importlib.import_module("fer3d_bench.explain.run")
    done = work.explain(run, fold, variant, dataset, per_class, out, method)
    if done.note:
        click.echo(done.note)
    for name, count in done.short.items():
        click.echo(f"{name}: only {count} correctly classified test sample(s)")
    click.echo(f"{done.figure}\n{done.heatmaps}  ({len(done.samples)} samples)")
