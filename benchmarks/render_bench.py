"""Where the time of `render-depth` goes per BU-3DFE sample, against 0.6, and how it scales.

Prints, in one run on a generated sample (about 8,000 vertices, 15,400 faces, 512x512 photos):
  1. median milliseconds per sample and stage, one core, renderers reused as in a worker, for
     0.6's alignment (its fit module, read from git at commit V06: a full-resolution silhouette
     render with depth, the silhouette IoU as the only check) beside this version's (a
     silhouette-only render, IoU and texture agreement checked), and the ratio, and how far
     each puts the camera from the generator's truth;
  2. samples per second of the whole command (render_dataset, pyrender) over the sample with
     1 and 2 worker processes, and the ratio.
Absolute times on a shared machine are noise; compare the ratios within one run.

    .venv/bin/python benchmarks/render_bench.py [--subjects 12] [--stage-samples 50]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fer3d_bench.formats import read_vrml
from fer3d_bench.render import align
from fer3d_bench.render.align import Aligned
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.run import render_dataset
from fer3d_bench.render.worker import RenderOptions, crop_and_encode, write_png
from fer3d_bench.sources import BU3DFE
from fer3d_bench.synthetic import SampleConfig, make_sample

V06 = "775b8ef"  # the 0.6.0 release
STAGES = ("parse", "align", "crop+write")


def fit_module_of(commit: str):
    """fer3d_bench/render/fit.py as it was at `commit`, imported under another name."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{commit}:fer3d_bench/render/fit.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "fit_v06.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fit_v06", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fit_v06"] = module
    spec.loader.exec_module(module)
    return module


def align_v06(old_fit, scan, renderer_for) -> Aligned:
    """0.6's BU-3DFE alignment: full-resolution silhouette, fit, render, silhouette IoU."""
    mesh, photo = scan.mesh, scan.photo
    renderer = renderer_for(*photo.shape[1::-1])
    target = old_fit.photo_foreground(photo)
    start = old_fit.initial_camera(mesh.vertices, target)
    first = np.isfinite(renderer.render(mesh.vertices, mesh.faces, start))
    moments = old_fit.camera_from_moments(first, start, target, False)
    camera = old_fit.refine_on_outline(moments, first, start, target, False)
    z = renderer.render(mesh.vertices, mesh.faces, camera)
    iou = old_fit.silhouette_iou(np.isfinite(z), target)
    return Aligned(photo, z, "ortho-fit", {**camera.as_dict(), "iou": iou})


def stage_times(records, source, out: Path, old_fit=None) -> tuple[dict, dict]:
    """Median ms per stage, and the fitted camera of each sample; `old_fit` given: 0.6's
    alignment, else this version's (its fit, and the silhouette and texture checks)."""
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    cameras = {}
    renderers = {}

    def renderer_for(width, height):
        if (width, height) not in renderers:
            renderers[width, height] = make_renderer("pyrender", width, height)
        return renderers[width, height]

    for record in records:
        t0 = time.perf_counter()
        scan = source.load(record)  # mesh, photo, texture and landmarks, as both versions read
        t1 = time.perf_counter()
        if old_fit is None:
            aligned = align.align_bu3dfe(scan, renderer_for)
        else:
            aligned = align_v06(old_fit, scan, renderer_for)
        t2 = time.perf_counter()
        cameras[record.sample_id] = aligned.quality
        rgb, depth, _ = crop_and_encode(aligned, RenderOptions())
        write_png(out / "rgb.png", rgb)
        write_png(out / "depth.png", depth)
        t3 = time.perf_counter()
        for stage, (a, b) in zip(STAGES, itertools.pairwise((t0, t1, t2, t3)), strict=True):
            times[stage].append((b - a) * 1000)
    for renderer in renderers.values():
        renderer.close()
    medians = {stage: statistics.median(values) for stage, values in times.items()}
    medians["total"] = sum(medians.values())
    return medians, cameras


def camera_errors(cameras: dict, truth: dict, root: Path, records) -> np.ndarray:
    """|fitted - true| offset (px) of each sample that is not misaligned on purpose."""
    errors = []
    for record in records:
        expected = truth[record.files["mesh"].relative_to(root).as_posix()]
        if not expected["planted"]:
            fitted = cameras[record.sample_id]
            errors.append(
                max(abs(fitted["tx"] - expected["f2d_tx"]), abs(fitted["ty"] - expected["f2d_ty"]))
            )
    return np.array(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12, help="BU-3DFE subjects (demo: 12)")
    parser.add_argument("--stage-samples", type=int, default=50, help="samples for part 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = SampleConfig(
            bu3dfe_subjects=args.subjects,
            bosphorus_subjects=0,
            cald3r_subjects=0,
            mend3s_subjects=0,
        )
        make_sample(tmp / "sample", config, workers=2, progress=False)
        root = tmp / "sample" / "bu3dfe"
        source = BU3DFE(root)
        records = source.scan().samples
        mesh = read_vrml(records[0].files["mesh"])
        print(
            f"{len(records)} BU-3DFE-sized samples: {len(mesh.vertices)} vertices, "
            f"{len(mesh.faces)} triangles, 512x512 photos, 260x260 crops\n"
        )
        part = records[: args.stage_samples]
        print(f"1. median ms per sample over {len(part)} samples, one core, renderers reused")
        old, old_cameras = stage_times(part, source, tmp, fit_module_of(V06))
        new, new_cameras = stage_times(part, source, tmp)
        print(f"   {'stage':<11}{'0.6':>9}{'now':>9}   0.6/now")
        for stage in old:
            a, b = old[stage], new[stage]
            print(f"   {stage:<11}{a:>9.1f}{b:>9.1f}   {a / b:>5.2f}x")
        truth = json.loads((tmp / "sample" / "ground_truth.json").read_text())["bu3dfe"]
        print("   fitted offset against the generator's truth (px, larger of |tx|, |ty|):")
        for name, cameras in (("0.6", old_cameras), ("now", new_cameras)):
            errors = camera_errors(cameras, truth, root, part)
            print(
                f"   {name:<11}median {np.median(errors):.3f}, max {errors.max():.3f} "
                f"over {len(errors)} samples"
            )

        print(f"\n2. whole command (render_dataset, pyrender) over all {len(records)} samples")
        rates = {}
        for workers in (1, 2):
            started = time.perf_counter()
            render_dataset(
                root, "bu3dfe", tmp / f"out{workers}", RenderOptions(), workers=workers,
                progress=False,
            )  # fmt: skip
            rates[workers] = len(records) / (time.perf_counter() - started)
            print(f"   {workers} worker(s): {rates[workers]:.2f} samples/s")
        print(f"   2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
