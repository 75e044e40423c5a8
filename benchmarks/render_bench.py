"""Where the time of `render-depth` goes, per BU-3DFE-sized sample, and its throughput.

Prints, in one run on a generated sample (about 8,000 vertices, 15,400 faces, 512x512 photos):
  1. median milliseconds per sample for parse, fit, render and crop+write, for the pyrender and
     the open3d backend side by side (one core, renderer reused as in a worker);
  2. the VRML parser against a naive line-by-line Python parser of the same files;
  3. samples per second of the whole command over the sample with 1 and 2 workers.
Absolute times on a shared machine are noise; compare the ratios within one run.

    .venv/bin/python benchmarks/render_bench.py [--subjects 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fer3d_bench.formats import read_rgb, read_vrml
from fer3d_bench.render import fit
from fer3d_bench.render.align import Aligned
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.run import RenderOptions, crop_and_encode, render_dataset, write_png
from fer3d_bench.sample import SampleConfig, make_sample


def stage_times(scans: list[tuple[Path, Path]], backend: str, out: Path) -> dict[str, float]:
    """Median ms per stage over the scans, each stage timed on its own."""
    times: dict[str, list[float]] = {"parse": [], "fit": [], "render": [], "crop+write": []}
    renderer = make_renderer(backend, 512, 512)
    for mesh_path, photo_path in scans:
        t0 = time.perf_counter()
        mesh = read_vrml(mesh_path)
        photo = read_rgb(photo_path)
        t1 = time.perf_counter()
        target = fit.photo_foreground(photo)
        start = fit.initial_camera(mesh.vertices, target)
        first = np.isfinite(renderer.render(mesh.vertices, mesh.faces, start))
        moments = fit.camera_from_moments(first, start, target, False)
        camera = fit.refine_on_outline(moments, first, start, target, False)
        t2 = time.perf_counter()
        z = renderer.render(mesh.vertices, mesh.faces, camera)
        fit.silhouette_iou(np.isfinite(z), target)
        t3 = time.perf_counter()
        rgb, depth, _ = crop_and_encode(Aligned(photo, z, "ortho-fit"), RenderOptions())
        write_png(out / "rgb.png", rgb)
        write_png(out / "depth.png", depth)
        t4 = time.perf_counter()
        for name, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[name].append(seconds * 1000)
    renderer.close()
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["total"] = sum(medians.values())
    return medians


def naive_vrml_points(path: Path) -> int:
    """A line-by-line pure-Python reading of the same numbers, for comparison only."""
    count = 0
    for line in path.read_text().splitlines():
        for token in re.split(r"[\s,]+", line.strip()):
            try:
                float(token)
            except ValueError:
                continue
            count += 1
    return count


def median_ms(function, items) -> float:
    values = []
    for item in items:
        t0 = time.perf_counter()
        function(item)
        values.append((time.perf_counter() - t0) * 1000)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2, help="BU-3DFE subjects to generate")
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
        scans = [(m, m.with_name(m.name.replace("_F3D.wrl", "_F2D.bmp"))) for m in meshes]
        mesh = read_vrml(meshes[0])
        print(
            f"{len(scans)} BU-3DFE-sized samples: {len(mesh.vertices)} vertices, "
            f"{len(mesh.faces)} triangles, 512x512 photos, 260x260 crops\n"
        )
        print("1. median ms per sample, one core, renderer reused")
        rows = {b: stage_times(scans, b, tmp) for b in ("pyrender", "open3d")}
        stages = list(rows["pyrender"])
        print(f"   {'stage':<11}" + "".join(f"{b:>10}" for b in rows) + "   open3d/pyrender")
        for stage in stages:
            a, b = rows["pyrender"][stage], rows["open3d"][stage]
            print(f"   {stage:<11}{a:>10.1f}{b:>10.1f}   {b / a:>6.2f}x")

        fast = median_ms(read_vrml, meshes)
        slow = median_ms(naive_vrml_points, meshes[:5])
        print(
            f"\n2. VRML parse: numpy {fast:.1f} ms, naive line-by-line {slow:.1f} ms "
            f"(numpy {slow / fast:.1f}x faster)"
        )

        print("\n3. whole command (render-depth, pyrender) over the sample")
        rates = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            render_dataset(
                root,
                "bu3dfe",
                tmp / f"out{workers}",
                RenderOptions(),
                workers=workers,
                progress=False,
            )
            rates[workers] = len(scans) / (time.perf_counter() - t0)
            print(f"   {workers} worker(s): {rates[workers]:.1f} samples/s")
        print(f"   2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
