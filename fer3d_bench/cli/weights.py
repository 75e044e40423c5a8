"""`weights inspect` and `weights import`: recognise a pretrained backbone file, convert it safely.

The work is imported when a command runs (through importlib, as the command registry does), so
`fer3d-bench weights --help` does not wait for torch and timm.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

existing_file = click.Path(path_type=Path, exists=True, dir_okay=False)


@click.group("weights")
def weights() -> None:
    """Pretrained backbone files: identify them, and import old pickles without running them."""


@weights.command("inspect")
@click.argument("file", type=existing_file)
def inspect_file(file: Path) -> None:
    """Say what FILE is (by hash), its tensors, and which backbones they fit; runs nothing."""
    inspect = importlib.import_module("fer3d_bench.weights.inspect")
    click.echo(inspect.describe(inspect.inspect_weights(file)))


@weights.command("import")
@click.argument("file", type=existing_file)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def import_file(file: Path, out: Path, force: bool) -> None:
    """Write FILE's backbone tensors to a safetensors file for --backbone-weights.

    A whole-model pickle is read with inert stand-ins for every class it names: nothing in it
    is imported or run, and no particular timm version is needed. The same FILE always gives
    the same bytes; the sha256 printed is the one `weights inspect` prints and runs record."""
    files = importlib.import_module("fer3d_bench.weights.files")
    known = importlib.import_module("fer3d_bench.weights.known")
    done = files.import_weights(file, out, force=force)
    click.echo(f"{done.out}: {done.keys} backbone tensors from {file} ({done.metadata['known']})")
    click.echo(f"  sha256 {known.file_hashes(done.out).sha256}")
    click.echo(f"  classifier keys dropped: {done.dropped}")
