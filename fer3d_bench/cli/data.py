"""The data commands: make-sample, scan, render-depth, build-dataset, inspect, verify."""

from __future__ import annotations

from pathlib import Path

import click

from fer3d_bench.cli.options import (
    allow_failures_option,
    dataset_choice,
    render_options,
    source_files,
    workers_option,
)
from fer3d_bench.dataset.build import BuildOptions
from fer3d_bench.dataset.build import build_dataset as build
from fer3d_bench.dataset.flags import describe_flags
from fer3d_bench.dataset.inspect import class_chart, contact_sheet, describe, qa_sheets
from fer3d_bench.dataset.verify import verify as verify_file
from fer3d_bench.io import atomic_path
from fer3d_bench.render.layout import ALIGNMENT_CSV, FAILED, QA_PNG
from fer3d_bench.render.run import render_dataset, summarise
from fer3d_bench.sources import SOURCES, scan_root
from fer3d_bench.sources.summary import format_scan, sample_table
from fer3d_bench.synthetic import SampleConfig
from fer3d_bench.synthetic import make_sample as generate
from fer3d_bench.workers import RENDER_WORKER_BYTES, cap_workers

COMPRESSIONS = ("none", "gzip", "lzf")


@click.command("make-sample")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the procedural generator.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes (at most the CPUs available, and what memory allows).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--exact",
    is_flag=True,
    help="The regular sample: one image size, .lm2 points exactly on their grid vertices, no "
    "planted misalignments (default: the real files' irregularities, see ground_truth.json).",
)
@click.option(
    "--misaligned",
    default=2,
    show_default=True,
    help="Scans misaligned on purpose per dataset (BU-3DFE, Bosphorus), for the checks to find.",
)
@click.option("--bu3dfe-subjects", default=12, show_default=True)
@click.option("--bosphorus-subjects", default=10, show_default=True)
@click.option("--cald3r-subjects", default=12, show_default=True)
@click.option("--mend3s-subjects", default=12, show_default=True)
def make_sample(out, seed, workers, overwrite, exact, misaligned, **sizes) -> None:
    """Write a procedural sample of all three datasets, in their native formats, to OUT."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    config = SampleConfig(seed=seed, exact=exact, misaligned=misaligned, **sizes)
    counts = generate(out, config, workers=_capped(workers), overwrite=overwrite)
    for name, count in counts.items():
        click.echo(f"{name}: {count} scans written to {out / name}")
    click.echo(f"generator truth (never read by the readers): {out / 'ground_truth.json'}")


@click.command()
@click.argument("root", type=click.Path(path_type=Path))
@dataset_choice
@source_files
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Load every sample and skip those whose files do not parse.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    help="Also write the sample table to this CSV file.",
)
@click.option("--list-excluded", is_flag=True, help="List every excluded sample, not only counts.")
def scan(root, dataset, label_map, layout, check, csv_path, list_excluded) -> None:
    """Index a dataset ROOT: counts per class and subject, and every file skipped and why."""
    result = scan_root(root, dataset, label_map=label_map, layout=layout, check=check)
    click.echo(format_scan(result, list_excluded=list_excluded))
    if csv_path:
        with atomic_path(csv_path) as tmp:
            sample_table(result).to_csv(tmp, index=False)
        click.echo(f"sample table written to {csv_path}")
    if not result.samples:
        raise click.ClickException(f"no usable {dataset} samples found under {root}")


@click.command("render-depth")
@click.argument("root", type=click.Path(path_type=Path))
@dataset_choice
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Output folder (one per dataset)."
)
@render_options
@workers_option
@allow_failures_option
@click.option("--strict", is_flag=True, help="Also exit 1 if samples aligned badly (flagged).")
@source_files
def render_depth(root, dataset, out, render, workers, allow_failures, strict, label_map, layout):
    """Aligned RGB crops and 16-bit depth maps for every sample, with alignment.csv.

    Exit status 1 if a sample failed to render (unless --allow-failures), or, with --strict, if
    a sample was flagged low-quality; flagged samples are otherwise kept and listed.
    """
    _capped(workers)  # said here; render_dataset applies the same cap
    table = render_dataset(
        root, dataset, out, render, workers=workers, layout=layout, label_map=label_map
    )
    text, failed, flagged = summarise(table, out)
    click.echo(text)
    if failed and not allow_failures:
        first = table[table["status"] == FAILED].iloc[0]
        raise click.ClickException(
            f"{failed} samples failed to render, first {first['sample_id']}: {first['reason']} "
            f"(see {out / ALIGNMENT_CSV}; --allow-failures to accept)"
        )
    if flagged and strict:
        raise click.ClickException(
            f"{flagged} samples aligned badly (--strict; see {out / QA_PNG})"
        )


def _capped(workers: int) -> int:
    """`--workers`, capped by the CPUs and memory available (`workers.py`); says so if it is."""
    count, sentence = cap_workers(workers, RENDER_WORKER_BYTES)
    if sentence:
        click.echo(sentence)
    return count


def _root_param(name: str) -> str:
    """The parameter that --<name> ROOT fills, e.g. root_cald3r_mend3s."""
    return f"root_{name.replace('-', '_')}"


def _root_options(function):
    """One --<dataset> ROOT option per registered source."""
    for name in reversed(list(SOURCES)):
        function = click.option(
            f"--{name}",
            _root_param(name),
            type=click.Path(path_type=Path),
            help=f"Root of the {name} dataset, in its native layout.",
        )(function)
    return function


@click.command("build-dataset")
@_root_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The .h5 file.")
@render_options
@workers_option
@click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    default=COMPRESSIONS[0],
    show_default=True,
    help="Smaller file, slower random access.",
)
@click.option(
    "--render-dir",
    type=click.Path(path_type=Path),
    help="Where render-depth output lives or goes, one subfolder per dataset "
    "(default: OUT.render). Samples already rendered there with the same options are reused.",
)
@allow_failures_option
@source_files
def build_dataset(out, render, workers, compression, render_dir, allow_failures, **given):
    """Merge the datasets into one versioned, byte-reproducible HDF5 file."""
    label_map, layout = given.pop("label_map"), given.pop("layout")
    roots = {name: given[_root_param(name)] for name in SOURCES if given[_root_param(name)]}
    _capped(workers)  # said here; render_dataset applies it (the file records what was asked)
    options = BuildOptions(
        render=render,
        workers=workers,
        compression=None if compression == "none" else compression,
        allow_failures=allow_failures,
    )
    render_folder = render_dir or out.with_name(out.name + ".render")
    made_here = not render_folder.exists()
    try:
        report = build(
            roots, out, options, render_dir=render_dir, label_map=label_map, layout=layout
        )
    except BaseException:
        if made_here:  # nothing rendered before it stopped: no empty *.render/ left behind
            _remove_empty(render_folder)
        raise
    for dataset, counts in sorted(report.counts.items()):
        total = sum(counts.values())
        click.echo(f"{dataset}: {total} samples " + " ".join(f"{k}={v}" for k, v in counts.items()))
    for dataset, left in sorted(report.left_out.items()):
        if any(left.values()):
            click.echo(f"{dataset}: left out {left['excluded']} excluded, {left['failed']} failed")
    for sample_id, reason in report.failed:
        click.echo(f"  left out (failed to render): {sample_id}: {reason}")
    for line in describe_flags(report.flags):
        click.echo(line)
    click.echo(f"written {report.path}")
    click.echo(f"fingerprint {report.fingerprint}")


def _remove_empty(folder: Path) -> None:
    """`folder` and the folders in it, where they hold no file at all (kept otherwise)."""
    if folder.is_symlink() or not folder.is_dir():
        return
    inner = [p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()]
    for path in sorted(inner, key=lambda p: len(p.parts), reverse=True) + [folder]:
        if not any(path.iterdir()):
            path.rmdir()


@click.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--figures",
    type=click.Path(path_type=Path),
    help="Folder for the pictures (default: beside the file).",
)
def inspect(path, figures) -> None:
    """Schema, dataset x class counts and flagged samples of a merged file; a contact sheet,
    a class chart and a QA sheet of the worst-aligned samples of each dataset."""
    click.echo(describe(path))
    folder = figures or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    for picture in (
        contact_sheet(path, folder / f"{path.stem}_contact.png"),
        class_chart(path, folder / f"{path.stem}_classes.png"),
        *qa_sheets(path, folder),
    ):
        click.echo(f"wrote {picture}")


@click.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def verify(path) -> None:
    """Read every sample of a merged file and check each chunk's checksum and the content
    fingerprint. Exit status 1 on any damage, naming the first damaged sample."""
    click.echo(verify_file(path))
