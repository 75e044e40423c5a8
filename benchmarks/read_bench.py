"""Random-access read speed of the merged HDF5 file against the same samples as PNG files.

Builds the merged file from a generated sample, then reads random samples (RGB + depth) from
the page cache in one process: HDF5 uncompressed (as built: a Fletcher-32 checksum per chunk,
checked on every read), the same file without checksums (as schema 1.1.0 wrote it), HDF5 with
gzip (checksummed too), and the render-depth PNG pairs. Each is timed in `--rounds` interleaved
rounds and the best round counts, so that a busy moment of a shared machine does not decide a
ratio. Prints samples per second, the ratios, and what the checksums cost.

    .venv/bin/python benchmarks/read_bench.py [--reads 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.build import LIBVER, BuildOptions, build_dataset
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.render.run import output_paths
from fer3d_bench.synthetic import SampleConfig, make_sample


def rate(read, order: np.ndarray) -> float:
    read(int(order[0]))  # warm the cache and the handles
    start = time.perf_counter()
    for index in order:
        read(int(index))
    return len(order) / (time.perf_counter() - start)


def without_checksums(source: Path, target: Path) -> None:
    """`source` as schema 1.1.0 wrote it: the same chunks of pixels, no checksums."""
    with h5py.File(source, "r") as old, h5py.File(target, "w", libver=LIBVER) as new:
        for name, values in old.items():
            chunks = values.chunks if name in ("rgb", "depth") else None
            new.create_dataset(name, data=values[()], dtype=values.dtype, chunks=chunks)
        for key, value in old.attrs.items():
            new.attrs[key] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
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
        without_checksums(tmp / "plain.h5", tmp / "unchecked.h5")
        plain, gzip = H5Dataset(tmp / "plain.h5"), H5Dataset(tmp / "gzip.h5")
        unchecked = H5Dataset(tmp / "unchecked.h5")
        assert plain.checksums and not unchecked.checksums
        order = np.random.default_rng(0).integers(0, len(plain), args.reads)
        folders = {"bu3dfe": "bu3dfe", "cald3r": "cald3r-mend3s", "mend3s": "cald3r-mend3s"}

        def png(index: int):
            sample_id = plain.sample_ids[index]
            paths = output_paths(render / folders[sample_id.split(":")[0]], sample_id)
            return np.asarray(Image.open(paths["rgb"])), np.asarray(Image.open(paths["depth"]))

        files = {
            "HDF5, uncompressed": tmp / "plain.h5",
            "HDF5, no checksums": tmp / "unchecked.h5",
            "HDF5, gzip": tmp / "gzip.h5",
        }
        for path in files.values():
            path.read_bytes()  # into the page cache
        readers = {
            "HDF5, uncompressed": plain.__getitem__,
            "HDF5, no checksums": unchecked.__getitem__,
            "HDF5, gzip": gzip.__getitem__,
            "PNG pairs": png,
        }
        rates = dict.fromkeys(readers, 0.0)
        for _ in range(args.rounds):
            for name, read in readers.items():
                rates[name] = max(rates[name], rate(read, order))
        print(
            f"{len(plain)} samples at 260x260, {args.reads} random reads (RGB + depth), "
            f"best of {args.rounds} rounds"
        )
        base = rates["HDF5, uncompressed"]
        for name, value in rates.items():
            size = f", {files[name].stat().st_size / 2**20:.0f} MiB" if name in files else ""
            print(f"  {name:<20} {value:8.0f} samples/s  ({value / base:.2f}x){size}")
        cost = base / rates["HDF5, no checksums"]
        print(f"checksums: {base:.0f} samples/s with, {cost:.2f}x the rate without them")


if __name__ == "__main__":
    main()
