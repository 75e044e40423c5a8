"""Where the time of `render-depth` goes per BU-3DFE sample, against 0.6, and how it scales.

Prints, in one run on a generated sample (about 8,000 vertices, 15,400 faces, 512x512 photos):
  1. median milliseconds per sample and stage, one core, renderers reused as in a worker, for
     0.6's sequence (its fit module, read from git at commit V06: a full-resolution silhouette
     render, the silhouette IoU as the only check) beside this version's (the silhouette
     rendered at half resolution; IoU and texture agreement checked), and the ratio;
  2. samples per second of the whole command (render_dataset, pyrender) over the sample with
     1 and 2 worker processes, and the ratio.
Absolute times on a shared machine are noise; compare the ratios within one run.

    .venv/bin/python benchmarks/render_bench.py [--subjects 12] [--stage-samples 50]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fer3d_bench.formats import read_bnd, read_rgb, read_vrml
from fer3d_bench.render import fit
from fer3d_bench.render.align import Aligned, texture_check
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.run import render_dataset
from fer3d_bench.render.worker import RenderOptions, crop_and_encode, write_png
from fer3d_bench.sample import SampleConfig, make_sample

V06 = "775b8ef"  # the 0.6.0 release
STAGES = ("parse", "fit", "render", "checks", "crop+write")


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


def stage_times(scans, out: Path, old_fit=None) -> dict[str, float]:
    """Median ms per stage; `old_fit` given: 0.6's sequence, else this version's."""
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    renderers = {}

    def renderer_for(width, height):
        if (width, height) not in renderers:
            renderers[width, height] = make_renderer("pyrender", width, height)
        return renderers[width, height]

    for mesh_path, photo_path, bnd_path in scans:
        t0 = time.perf_counter()
        mesh = read_vrml(mesh_path)
        photo = read_rgb(photo_path)
        texture = read_rgb(mesh_path.with_suffix(".bmp"))
        read_bnd(bnd_path)
        t1 = time.perf_counter()
        if old_fit is not None:
            target = old_fit.photo_foreground(photo)
            start = old_fit.initial_camera(mesh.vertices, target)
            first = np.isfinite(renderer_for(512, 512).render(mesh.vertices, mesh.faces, start))
            moments = old_fit.camera_from_moments(first, start, target, False)
            camera = old_fit.refine_on_outline(moments, first, start, target, False)
        else:
            target = fit.photo_foreground(photo)
            start = fit.coarse_camera(fit.initial_camera(mesh.vertices, target))
            coarse = renderer_for(*fit.coarse_size(512, 512))
            first = coarse.silhouette(mesh.vertices, mesh.faces, start)
            moments = fit.camera_from_moments(first, start, target, False)
            camera = fit.refine_on_outline(moments, first, start, target, False)
        t2 = time.perf_counter()
        z = renderer_for(512, 512).render(mesh.vertices, mesh.faces, camera)
        t3 = time.perf_counter()
        fit.silhouette_iou(np.isfinite(z), target)
        if old_fit is None:
            texture_check(mesh, texture, photo, camera)
        t4 = time.perf_counter()
        rgb, depth, _ = crop_and_encode(Aligned(photo, z, "ortho-fit"), RenderOptions())
        write_png(out / "rgb.png", rgb)
        write_png(out / "depth.png", depth)
        t5 = time.perf_counter()
        for stage, (a, b) in zip(STAGES, itertools.pairwise((t0, t1, t2, t3, t4, t5)), strict=True):
            times[stage].append((b - a) * 1000)
    for renderer in renderers.values():
        renderer.close()
    medians = {stage: statistics.median(values) for stage, values in times.items()}
    medians["total"] = sum(medians.values())
    return medians


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
        meshes = sorted(root.rglob("*_F3D.wrl"))
        scans = [
            (m, m.with_name(m.name.replace("_F3D.wrl", "_F2D.bmp")), m.with_suffix(".bnd"))
            for m in meshes
        ]
        mesh = read_vrml(meshes[0])
        print(
            f"{len(scans)} BU-3DFE-sized samples: {len(mesh.vertices)} vertices, "
            f"{len(mesh.faces)} triangles, 512x512 photos, 260x260 crops\n"
        )
        part = scans[: args.stage_samples]
        print(f"1. median ms per sample over {len(part)} samples, one core, renderers reused")
        old = stage_times(part, tmp, fit_module_of(V06))
        new = stage_times(part, tmp)
        print(f"   {'stage':<11}{'0.6':>9}{'now':>9}   0.6/now")
        for stage in old:
            a, b = old[stage], new[stage]
            print(f"   {stage:<11}{a:>9.1f}{b:>9.1f}   {a / b:>5.2f}x")

        print(f"\n2. whole command (render_dataset, pyrender) over all {len(scans)} samples")
        rates = {}
        for workers in (1, 2):
            started = time.perf_counter()
            render_dataset(
                root, "bu3dfe", tmp / f"out{workers}", RenderOptions(), workers=workers,
                progress=False,
            )  # fmt: skip
            rates[workers] = len(scans) / (time.perf_counter() - started)
            print(f"   {workers} worker(s): {rates[workers]:.2f} samples/s")
        print(f"   2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
