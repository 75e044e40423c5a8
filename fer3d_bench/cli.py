"""Command line: thin click commands that parse options and call the package."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fer3d_bench import __version__
from fer3d_bench.errors import Fer3dError
from fer3d_bench.render.bars import ANNOTATION_ALLOWANCE_PX, MIN_SILHOUETTE_IOU

DATASETS = ("bu3dfe", "bosphorus", "cald3r-mend3s")
EXCLUDE_FLAGGED_HELP = (
    "Leave training samples that render-depth flagged low-quality out (recorded, and named in "
    "the report's title); test folds stay the protocol's. Default: keep them, as the published "
    "protocols do."
)


class _Group(click.Group):
    """Turns the project's own errors into one clear line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Fer3dError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="fer3d-bench")
def main() -> None:
    """fer3d-bench: a reproducible RGB+depth facial expression recognition benchmark."""


@main.command("make-sample")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the procedural generator.")
@click.option("--workers", default=2, show_default=True, help="Worker processes.")
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
def make_sample_cmd(out, seed, workers, overwrite, exact, misaligned, **sizes) -> None:
    """Write a procedural sample of all three datasets, in their native formats, to OUT."""
    from fer3d_bench.sample import SampleConfig, make_sample

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    config = SampleConfig(seed=seed, exact=exact, misaligned=misaligned, **sizes)
    counts = make_sample(out, config, workers=workers, overwrite=overwrite)
    for name, count in counts.items():
        click.echo(f"{name}: {count} scans written to {out / name}")
    click.echo(f"generator truth (never read by the readers): {out / 'ground_truth.json'}")


@main.command()
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--dataset", type=click.Choice(DATASETS), required=True)
@click.option("--label-map", type=click.Path(path_type=Path), help="TOML overriding labels.toml.")
@click.option("--layout", type=click.Path(path_type=Path), help="CalD3r & MenD3s layout TOML.")
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
    from fer3d_bench.io import atomic_path
    from fer3d_bench.sources import scan_root
    from fer3d_bench.sources.summary import format_scan, sample_table

    result = scan_root(root, dataset, label_map=label_map, layout=layout, check=check)
    click.echo(format_scan(result, list_excluded=list_excluded))
    if csv_path:
        with atomic_path(csv_path) as tmp:
            sample_table(result).to_csv(tmp, index=False)
        click.echo(f"sample table written to {csv_path}")
    if not result.samples:
        raise click.ClickException(f"no usable {dataset} samples found under {root}")


@main.command("render-depth")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--dataset", type=click.Choice(DATASETS), required=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Output folder (one per dataset)."
)
@click.option("--size", default=260, show_default=True, help="Side of the square crops.")
@click.option(
    "--margin",
    default=0.1,
    show_default=True,
    help="Crop margin around the face, as a fraction of its longer side.",
)
@click.option(
    "--backend",
    type=click.Choice(["pyrender", "open3d"]),
    default="pyrender",
    show_default=True,
    help="open3d needs no OpenGL.",
)
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option(
    "--fit-rotation",
    is_flag=True,
    help="BU-3DFE: also fit a small in-plane rotation of the F2D camera.",
)
@click.option(
    "--min-iou",
    default=MIN_SILHOUETTE_IOU,
    show_default=True,
    help="BU-3DFE: silhouette IoU below this marks a sample low-quality.",
)
@click.option(
    "--landmark-allowance",
    default=ANNOTATION_ALLOWANCE_PX,
    show_default=True,
    help="Bosphorus: annotation error (px) allowed beyond the grid lattice's snap radius when "
    "a .lm2 point is compared with its .lm3 vertex.",
)
@click.option("--allow-failures", is_flag=True, help="Exit 0 even if samples failed to render.")
@click.option("--strict", is_flag=True, help="Also exit 1 if samples aligned badly (flagged).")
@click.option("--label-map", type=click.Path(path_type=Path))
@click.option("--layout", type=click.Path(path_type=Path))
def render_depth(
    root,
    dataset,
    out,
    size,
    margin,
    backend,
    workers,
    fit_rotation,
    min_iou,
    landmark_allowance,
    allow_failures,
    strict,
    label_map,
    layout,
) -> None:
    """Aligned RGB crops and 16-bit depth maps for every sample, with alignment.csv.

    Exit status 1 if a sample failed to render (unless --allow-failures), or, with --strict, if
    a sample was flagged low-quality; flagged samples are otherwise kept and listed.
    """
    from fer3d_bench.render.run import RenderOptions, render_dataset, summarise

    options = RenderOptions(size, margin, backend, fit_rotation, min_iou, landmark_allowance)
    table = render_dataset(
        root, dataset, out, options, workers=workers, layout=layout, label_map=label_map
    )
    text, failed, flagged = summarise(table, out)
    click.echo(text)
    if failed and not allow_failures:
        raise click.ClickException(
            f"{failed} samples failed to render (see {out / 'alignment.csv'}; "
            "--allow-failures to accept)"
        )
    if flagged and strict:
        raise click.ClickException(
            f"{flagged} samples aligned badly (--strict; see {out / 'qa_worst.png'})"
        )


@main.command("build-dataset")
@click.option("--bu3dfe", "bu3dfe_root", type=click.Path(path_type=Path), help="BU-3DFE root.")
@click.option("--bosphorus", "bosphorus_root", type=click.Path(path_type=Path))
@click.option("--cald3r-mend3s", "cald3r_root", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The .h5 file.")
@click.option("--size", default=260, show_default=True)
@click.option("--workers", default=1, show_default=True)
@click.option("--backend", type=click.Choice(["pyrender", "open3d"]), default="pyrender")
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "lzf"]),
    default="none",
    show_default=True,
    help="Smaller file, slower random access.",
)
@click.option(
    "--render-dir",
    type=click.Path(path_type=Path),
    help="Where render-depth output lives or goes, one subfolder per dataset "
    "(default: OUT.render). Samples already rendered there are reused.",
)
@click.option("--allow-failures", is_flag=True, help="Leave failed samples out, counted.")
@click.option("--label-map", type=click.Path(path_type=Path))
@click.option("--layout", type=click.Path(path_type=Path))
def build_dataset_cmd(
    bu3dfe_root,
    bosphorus_root,
    cald3r_root,
    out,
    size,
    workers,
    backend,
    compression,
    render_dir,
    allow_failures,
    label_map,
    layout,
) -> None:
    """Merge the datasets into one versioned, byte-reproducible HDF5 file."""
    from fer3d_bench.dataset.build import BuildOptions, build_dataset
    from fer3d_bench.dataset.flags import describe_flags

    roots = {
        name: root
        for name, root in (
            ("bu3dfe", bu3dfe_root),
            ("bosphorus", bosphorus_root),
            ("cald3r-mend3s", cald3r_root),
        )
        if root is not None
    }
    options = BuildOptions(
        size=size,
        backend=backend,
        workers=workers,
        compression=None if compression == "none" else compression,
        allow_failures=allow_failures,
    )
    report = build_dataset(
        roots, out, options, render_dir=render_dir, label_map=label_map, layout=layout
    )
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


@main.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--figures",
    type=click.Path(path_type=Path),
    help="Folder for the pictures (default: beside the file).",
)
def inspect(path, figures) -> None:
    """Schema, dataset x class counts and flagged samples of a merged file; a contact sheet,
    a class chart and a QA sheet of the worst-aligned samples of each dataset."""
    from fer3d_bench.dataset.inspect import class_chart, contact_sheet, describe, qa_sheets

    click.echo(describe(path))
    folder = figures or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    for picture in (
        contact_sheet(path, folder / f"{path.stem}_contact.png"),
        class_chart(path, folder / f"{path.stem}_classes.png"),
        *qa_sheets(path, folder),
    ):
        click.echo(f"wrote {picture}")


@main.group()
def splits() -> None:
    """Benchmark protocols -> published, versioned, verifiable split manifests."""


def _split_items(dataset: Path | None, naming_scheme: bool, protocol):
    from fer3d_bench import splits as sp

    if naming_scheme:
        if set(protocol.datasets) != {"bu3dfe"}:
            raise click.UsageError("--naming-scheme lists BU-3DFE only")
        return sp.bu3dfe_catalogue(), "BU-3DFE naming scheme (100 subjects x 25 scans)"
    if dataset is None:
        raise click.UsageError("give --dataset merged.h5|ROOT (or --naming-scheme for BU-3DFE)")
    if dataset.is_file():
        from fer3d_bench.dataset import H5Dataset

        with H5Dataset(dataset) as data:
            fingerprint = data.fingerprint
        return sp.items_from_h5(dataset), f"merged HDF5 with fingerprint {fingerprint}"
    wanted = set(protocol.datasets)
    source = {"bu3dfe": "bu3dfe", "bosphorus": "bosphorus"}.get(next(iter(wanted)))
    if wanted <= {"cald3r", "mend3s"}:
        source = "cald3r-mend3s"
    if len(wanted) > 1 and source != "cald3r-mend3s":
        raise click.UsageError(f"{protocol.name} spans several datasets: give a merged .h5 file")
    return sp.items_from_root(dataset, source), f"scan of a {source} tree"


@splits.command("generate")
@click.option("--protocol", "names", multiple=True, required=True, help="Protocol name(s).")
@click.option("--dataset", type=click.Path(path_type=Path, exists=True), help="merged.h5 or ROOT")
@click.option("--naming-scheme", is_flag=True, help="BU-3DFE: list samples from its naming scheme.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("data_manifests"), show_default=True
)
def splits_generate(names, dataset, naming_scheme, out) -> None:
    """Write <out>/<protocol>/<version>.json (+ .csv) and refresh <out>/SHA256SUMS."""
    from fer3d_bench import splits as sp

    for name in names:
        protocol = sp.load_protocol(name)
        items, source = _split_items(dataset, naming_scheme, protocol)
        manifest = sp.make_manifest(protocol, items, source)
        written = sp.write_manifest(manifest, out)
        click.echo(
            f"{name} {protocol.version}: {len(manifest.content['samples'])} samples, "
            f"sha256 {manifest.sha256} -> {written[0]}"
        )


@splits.command("verify")
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), required=True)
@click.option("--dataset", type=click.Path(path_type=Path, exists=True), required=True)
def splits_verify(manifest_path, dataset) -> None:
    """Check that a dataset holds exactly the samples and labels a manifest names."""
    from fer3d_bench import splits as sp

    manifest = sp.read_manifest(manifest_path)
    protocol = sp.load_protocol(manifest.content["protocol"])
    items, _ = _split_items(dataset, False, protocol)
    result = sp.verify(manifest, protocol, items)
    click.echo(f"{manifest_path}: {len(manifest.content['samples'])} samples expected")
    for line in result.describe():
        click.echo(f"  {line}")
    if not result.ok:
        raise click.ClickException("the dataset does not match the manifest")
    click.echo("  ok: the dataset matches the manifest")


@splits.command("show")
@click.argument("manifest_path", type=click.Path(path_type=Path))
@click.option("--repetition", default=0, show_default=True)
def splits_show(manifest_path, repetition) -> None:
    """Per-fold class table of one repetition of a manifest."""
    from fer3d_bench import splits as sp

    click.echo(sp.fold_table(sp.read_manifest(manifest_path), repetition))


@main.command("train")
@click.option("--dataset", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--manifest", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--fold", default=0, show_default=True, help="Test fold (hold-out: ignored).")
@click.option("--repetition", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--preset",
    type=click.Choice(["paper", "cpu-small", "tiny"]),
    default="paper",
    show_default=True,
)
@click.option("--epochs", type=int, help="Override the preset's number of epochs.")
@click.option("--ablation", type=click.Choice(["rgb-only", "sum-fusion", "no-transformer"]))
@click.option(
    "--backbone-weights",
    type=click.Path(path_type=Path, exists=True),
    help="Local timm state dict (or a whole-model pickle with --trust-pickle).",
)
@click.option("--trust-pickle", is_flag=True, help="Allow loading a whole-model pickle.")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--exclude-flagged", is_flag=True, help=EXCLUDE_FLAGGED_HELP)
def train_cmd(
    dataset,
    manifest,
    fold,
    repetition,
    out,
    preset,
    epochs,
    ablation,
    backbone_weights,
    trust_pickle,
    device,
    exclude_flagged,
) -> None:
    """Train the reference model on one fold of a manifest; resumes from OUT."""
    from fer3d_bench import splits as sp
    from fer3d_bench.dataset import H5Dataset
    from fer3d_bench.train.loop import ABLATIONS, PRESETS, train, with_overrides

    changes = dict(ABLATIONS[ablation]) if ablation else {}
    if epochs is not None:
        changes["epochs"] = epochs
    config = with_overrides(PRESETS[preset], **changes)
    content = sp.read_manifest(manifest)
    with H5Dataset(dataset) as data:
        train_idx, val_idx = sp.fold_indices(content, data, repetition, fold)
    result = train(
        dataset,
        train_idx,
        val_idx,
        out,
        config,
        device=device,
        backbone_weights=backbone_weights,
        trust_pickle=trust_pickle,
        classes=content.content["classes"],
        exclude_flagged=exclude_flagged,
    )
    if result.left_out:
        click.echo(f"left out of training (flagged low-quality): {', '.join(result.left_out)}")
    for record in result.history:
        click.echo(
            f"epoch {record['epoch']:>3}  loss {record['loss_total']:.4f}  "
            f"train {record['train_accuracy']:.3f}  val {record['val_accuracy']:.3f}"
        )
    click.echo(f"validation accuracy {result.val_accuracy:.4f}; checkpoint {result.checkpoint}")


@main.command("evaluate")
@click.option("--dataset", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--protocol", "protocols", multiple=True, required=True, help="Protocol name(s).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option(
    "--manifests",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of <protocol>/<version>.json manifests [default: the published data_manifests/].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML: preset = ..., top-level training keys, [model] and [loss] tables.",
)
@click.option(
    "--preset", type=click.Choice(["paper", "cpu-small", "tiny"]), help="[default: paper]"
)
@click.option("--epochs", type=int, help="Override the number of epochs.")
@click.option("--repetitions", type=int, help="Run only the first N repetitions of each protocol.")
@click.option("--max-folds", type=int, help="Run only the first N folds of each repetition.")
@click.option(
    "--ablation",
    "ablations",
    multiple=True,
    type=click.Choice(["rgb-only", "sum-fusion", "no-transformer"]),
    help="Also run this ablation of the reference model (repeatable).",
)
@click.option(
    "--launcher",
    type=click.Choice(["local", "slurm", "submitit-local"]),
    default="local",
    show_default=True,
    help="local: here; slurm: a submitit job array; submitit-local: submitit's local executor.",
)
@click.option("--jobs", default=1, show_default=True, help="local: folds trained at once.")
@click.option("--wait/--no-wait", default=False, help="slurm: wait for the jobs, then report.")
@click.option("--slurm-partition")
@click.option("--slurm-time", default=240, show_default=True, help="Minutes per fold job.")
@click.option("--slurm-gpus", default=1, show_default=True)
@click.option("--slurm-cpus", default=8, show_default=True)
@click.option("--slurm-mem-gb", default=32, show_default=True)
@click.option("--slurm-parallel", default=64, show_default=True, help="Array jobs at once.")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--backbone-weights", type=click.Path(path_type=Path, exists=True))
@click.option("--trust-pickle", is_flag=True)
@click.option("--exclude-flagged", is_flag=True, help=EXCLUDE_FLAGGED_HELP)
def evaluate_cmd(
    dataset,
    protocols,
    out,
    manifests,
    config_file,
    preset,
    epochs,
    repetitions,
    max_folds,
    ablations,
    launcher,
    jobs,
    wait,
    slurm_partition,
    slurm_time,
    slurm_gpus,
    slurm_cpus,
    slurm_mem_gb,
    slurm_parallel,
    device,
    backbone_weights,
    trust_pickle,
    exclude_flagged,
) -> None:
    """Train and test every fold of each protocol (resumable), then write and print the report."""
    from fer3d_bench import evaluate as ev
    from fer3d_bench import splits as sp

    file_preset, overrides = ev.load_config_file(config_file) if config_file else (None, {})
    if epochs is not None:
        overrides["epochs"] = epochs
    for name, value in (("--repetitions", repetitions), ("--max-folds", max_folds)):
        if value is not None and value < 1:
            raise click.BadParameter(f"{name} must be at least 1")
    spec = ev.EvalSpec(
        dataset=dataset,
        protocols=protocols,
        out=out,
        manifests=manifests or sp.MANIFESTS_DIR,
        preset=preset or file_preset or "paper",
        overrides=overrides,
        ablations=ablations,
        repetitions=repetitions,
        max_folds=max_folds,
        device=device,
        backbone_weights=backbone_weights,
        trust_pickle=trust_pickle,
        launcher=launcher,
        exclude_flagged=exclude_flagged,
    )
    planned = ev.plan(spec, progress=launcher == "local" and jobs == 1)
    pending = planned.pending()
    click.echo(
        f"{out}: {len(planned.jobs)} fold jobs, {len(planned.jobs) - len(pending)} already done"
    )
    if launcher == "local":
        ev.run_local(pending, workers=jobs, on_result=lambda s: click.echo(ev.summary_line(s)))
    else:
        options = ev.SlurmOptions(
            slurm_partition, slurm_time, slurm_gpus, slurm_cpus, slurm_mem_gb, slurm_parallel
        )
        cluster = "slurm" if launcher == "slurm" else "local"
        waiting = wait or launcher == "submitit-local"
        ev.submit(pending, out, cluster, options, wait=waiting)
        if not waiting:
            click.echo(
                f"submitted {len(pending)} jobs (ids in {out}/submitit/jobs.json); when they "
                f"have finished: fer3d-bench report {out}"
            )
            return
    _print_report(out)


def _print_report(run_dir: Path) -> None:
    from fer3d_bench.report import format_tables, write_report

    paths = write_report(run_dir)
    click.echo("")
    click.echo(format_tables(paths.report))
    click.echo(f"report: {paths.markdown} and {paths.json}; figures in {paths.markdown.parent}")


@main.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report_cmd(run_dir) -> None:
    """Aggregate a run folder's fold results into report.md, report.json and figures."""
    _print_report(run_dir)


@main.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo"), show_default=True)
@click.option("--workers", default=2, show_default=True, help="Processes for sample and render.")
def demo_cmd(out, workers) -> None:
    """Everything on the generated sample: sample, render, build, splits, evaluate, report."""
    import time

    from fer3d_bench.demo import run_demo

    started = time.perf_counter()
    paths, tables = run_demo(out, workers=workers, echo=click.echo)
    click.echo("")
    click.echo(tables)
    click.echo(f"report: {paths.markdown}; figures in {paths.markdown.parent / 'figures'}")
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
