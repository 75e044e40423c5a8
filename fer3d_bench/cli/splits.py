"""The splits commands: protocols -> published, versioned, verifiable manifests."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench import splits as sp
from fer3d_bench.pipeline.splits import generate_manifest, protocol_items, verify_manifest

BY_SAMPLE = (
    "folds dealt by sample: the same person is in train and test; it measures that leak, "
    "it is not a benchmark"
)


@click.group()
def splits() -> None:
    """Benchmark protocols -> published, versioned, verifiable split manifests."""


@splits.command("generate")
@click.option(
    "--protocol", "names", multiple=True, required=True, help="Protocol name(s) or .toml file(s)."
)
@click.option("--dataset", type=click.Path(path_type=Path, exists=True), help="merged.h5 or ROOT")
@click.option("--naming-scheme", is_flag=True, help="BU-3DFE: list samples from its naming scheme.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("data_manifests"), show_default=True
)
def generate(names, dataset, naming_scheme, out) -> None:
    """Write <out>/<protocol>/<version>.json (+ .csv) and refresh <out>/SHA256SUMS."""
    for name in names:
        protocol = sp.load_protocol(name)
        items = protocol_items(protocol, dataset, naming_scheme)
        manifest, written = generate_manifest(protocol, items, out)
        click.echo(
            f"{protocol.name} {protocol.version}: {len(manifest)} samples, "
            f"sha256 {manifest.sha256} -> {written}"
        )
        if manifest.unit == "sample":
            click.echo(f"  {BY_SAMPLE}")


@splits.command("verify")
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), required=True)
@click.option("--dataset", type=click.Path(path_type=Path, exists=True), required=True)
def verify(manifest_path, dataset) -> None:
    """Check a manifest's own invariants, and that a dataset holds exactly its samples, labels
    and subjects."""
    manifest, result = verify_manifest(manifest_path, dataset)
    click.echo(f"{manifest_path}: {len(manifest)} samples expected")
    for line in result.describe():
        click.echo(f"  {line}")
    if result.broken:
        raise click.ClickException("the manifest contradicts itself or its protocol")
    if not result.ok:
        raise click.ClickException("the dataset does not match the manifest")
    click.echo("  ok: the dataset matches the manifest")


@splits.command("show")
@click.argument("manifest_path", type=click.Path(path_type=Path))
@click.option(
    "--repetition", default=0, show_default=True, help="Repetition index, numbered from 0."
)
def show(manifest_path, repetition) -> None:
    """Per-fold class table of one repetition of a manifest."""
    manifest = sp.read_manifest(manifest_path)
    if not 0 <= repetition < manifest.repetitions:
        raise click.BadParameter(
            f"{manifest_path} has repetitions 0 to {manifest.repetitions - 1} (numbered "
            "from 0, as in folders and fold lines)",
            param_hint="--repetition",
        )
    click.echo(manifest.table(repetition))
