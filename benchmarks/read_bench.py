"""Random-access read speed of the merged HDF5 file against the same samples as PNG files.

Builds the merged file from a generated sample (or reads the one given), then reads random
samples (RGB + depth) from the page cache in one process: HDF5 uncompressed, HDF5 with gzip,
and the render-depth PNG pairs. Prints samples per second and the ratios.

    .venv/bin/python benchmarks/read_bench.py [--reads 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.render.run import output_paths
from fer3d_bench.sample import SampleConfig, make_sample


def rate(read, order: np.ndarray) -> float:
    read(int(order[0]))  # warm the cache and the handles
    start = time.perf_counter()
    for index in order:
        read(int(index))
    return len(order) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = SampleConfig(
            bu3dfe_subjects=2, bosphorus_subjects=0, cald3r_subjects=4, mend3s_subjects=4
        )
        make_sample(tmp / "sample", config, workers=2, progress=False)
        roots = {
            "bu3dfe": tmp / "sample" / "bu3dfe",
            "cald3r-mend3s": tmp / "sample" / "cald3r-mend3s",
        }
        render = tmp / "render"
        build_dataset(
            roots,
            tmp / "plain.h5",
            BuildOptions(render=RenderOptions(size=260), workers=2),
            render_dir=render,
            progress=False,
        )
        build_dataset(
            roots,
            tmp / "gzip.h5",
            BuildOptions(render=RenderOptions(size=260), compression="gzip"),
            render_dir=render,
            progress=False,
        )
        plain, gzip = H5Dataset(tmp / "plain.h5"), H5Dataset(tmp / "gzip.h5")
        order = np.random.default_rng(0).integers(0, len(plain), args.reads)
        folders = {"bu3dfe": "bu3dfe", "cald3r": "cald3r-mend3s", "mend3s": "cald3r-mend3s"}

        def png(index: int):
            sample_id = plain.sample_ids[index]
            paths = output_paths(render / folders[sample_id.split(":")[0]], sample_id)
            return np.asarray(Image.open(paths["rgb"])), np.asarray(Image.open(paths["depth"]))

        for path in [tmp / "plain.h5", tmp / "gzip.h5"]:
            path.read_bytes()  # into the page cache
        rates = {
            "HDF5, uncompressed": rate(plain.__getitem__, order),
            "HDF5, gzip": rate(gzip.__getitem__, order),
            "PNG pairs": rate(png, order),
        }
        sizes = {
            "HDF5, uncompressed": (tmp / "plain.h5").stat().st_size,
            "HDF5, gzip": (tmp / "gzip.h5").stat().st_size,
        }
        print(f"{len(plain)} samples at 260x260, {args.reads} random reads (RGB + depth)")
        base = rates["HDF5, uncompressed"]
        for name, value in rates.items():
            size = f", {sizes[name] / 2**20:.0f} MiB" if name in sizes else ""
            print(f"  {name:<20} {value:8.0f} samples/s  ({value / base:.2f}x){size}")


if __name__ == "__main__":
    main()
