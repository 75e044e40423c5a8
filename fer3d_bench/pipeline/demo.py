"""The one-command main job: every stage on the generated sample, ending in the report table.

Sized for 2 CPU cores and under 10 minutes: the default sample (12 BU-3DFE subjects, all three
datasets), the merged HDF5 at 64 px (the `tiny` preset's input size), the `tiny` preset (timm's
test EfficientNet, 14 epochs), all 5 folds of `bu3dfe-full` and 2 repetitions x 3 folds of
`bu3dfe-legacy`. Every stage resumes: running the demo again reuses what is there.
"""

from __future__ import annotations

from pathlib import Path

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.dataset.flags import describe_flags
from fer3d_bench.evaluation.launchers import Launch
from fer3d_bench.evaluation.plan import EvalSpec
from fer3d_bench.io import output_folder
from fer3d_bench.pipeline.evaluate import Echo, evaluate
from fer3d_bench.pipeline.splits import generate_manifest, h5_items
from fer3d_bench.render.layout import QA_PNG
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.report import ReportPaths, write_report
from fer3d_bench.report.tables import format_tables
from fer3d_bench.synthetic import SampleConfig, make_sample
from fer3d_bench.train.environment import Placement, TrainingEnvironment

SIZE = 64
PRESET = "tiny"
# (protocol, repetitions, folds); None runs all of them
EVALUATIONS = (("bu3dfe-full", None, None), ("bu3dfe-legacy", 2, 3))


def run_demo(
    out: Path,
    workers: int = 2,
    progress: bool = True,
    echo: Echo = print,
    *,
    sample_config: SampleConfig = SampleConfig(),  # noqa: B008  (frozen)
    evaluations: tuple = EVALUATIONS,
    overrides: dict | None = None,
) -> tuple[ReportPaths, str]:
    """Run everything into `out`; returns the report's paths and its printed tables.

    The keyword arguments exist for the tests, which run the same code on a smaller sample.
    """
    out = output_folder(out)
    sample = out / "sample"
    if (sample / "ground_truth.json").exists():  # written last, so the sample is complete
        echo(f"[1/5] sample: reusing {sample}")
    else:
        echo(f"[1/5] sample: generating BU-3DFE, Bosphorus and CalD3r & MenD3s into {sample}")
        counts = make_sample(sample, sample_config, workers=workers, progress=progress)
        echo("      " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    sizes = {
        "bu3dfe": sample_config.bu3dfe_subjects,
        "bosphorus": sample_config.bosphorus_subjects,
        "cald3r-mend3s": sample_config.cald3r_subjects + sample_config.mend3s_subjects,
    }
    roots = {name: sample / name for name, n in sizes.items() if n}
    merged = out / "merged.h5"
    echo(f"[2/5] render-depth and build-dataset at {SIZE} px -> {merged}")
    report = build_dataset(
        roots,
        merged,
        BuildOptions(render=RenderOptions(size=SIZE), workers=workers),
        render_dir=output_folder(out, out / "render"),  # never a link planted in `out`
        progress=progress,
    )
    for dataset, classes in report.counts.items():
        echo(f"      {dataset}: {sum(classes.values())} samples")
    for line in describe_flags(report.flags):
        echo(f"      {line}")
    echo(f"      worst-aligned samples: {out / 'render'}/<dataset>/{QA_PNG} (where they rank)")
    echo(f"      fingerprint {report.fingerprint}")
    echo(f"[3/5] splits generate -> {out / 'manifests'}")
    items = h5_items(merged)
    output_folder(out, out / "manifests")
    for name, _, _ in evaluations:
        manifest, _ = generate_manifest(sp.load_protocol(name), items, out / "manifests")
        echo(f"      {name}: {len(manifest)} samples, sha256 {manifest.sha256}")
    run_dir = output_folder(out, out / "runs" / "demo")
    echo(f"[4/5] evaluate ({PRESET} preset) -> {run_dir}")
    for name, repetitions, folds in evaluations:
        spec = EvalSpec(
            dataset=merged,
            protocols=(name,),
            out=run_dir,
            manifests=out / "manifests",
            preset=PRESET,
            overrides=dict(overrides or {}),
            repetitions=repetitions,
            max_folds=folds,
            environment=TrainingEnvironment(placement=Placement(device="cpu")),
        )
        evaluate(spec, Launch(progress=progress), lambda line: echo(f"      {line}"), report=False)
    echo(f"[5/5] report -> {run_dir / 'report.md'}")
    paths = write_report(run_dir)
    return paths, format_tables(paths.report)
