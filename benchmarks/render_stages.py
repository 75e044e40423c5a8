"""One version's per-sample path of `render-depth` on BU-3DFE, timed stage by stage.

Started by `render_bench.py` once per version, with that version's `fer3d_bench` first on
PYTHONPATH, so that each runs its own code unchanged, in a process of its own pinned to one
core. It reads one JSON request a line on stdin (`{"index": i}`: the i-th sample of the root's
scan) and answers one JSON line on stdout: the milliseconds of each stage (wall clock, and this
process's CPU time with its threads) and the fitted camera. Only the functions every version
since 0.13 has are called: `Source.load`, `align.align_bu3dfe`, `worker.crop_and_encode`,
`worker.write_png`, `backends.make_renderer`.

    PYTHONPATH=<package root> python benchmarks/render_stages.py ROOT OUT CPU
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import fer3d_bench
from fer3d_bench.render import align
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.worker import RenderOptions, crop_and_encode, write_png
from fer3d_bench.sources import BU3DFE

STAGES = ("parse", "align", "crop+write")


class Stages:
    """A worker's view of one version: renderers made once and reused, as in render-depth."""

    def __init__(self, root: Path, out: Path):
        self.source = BU3DFE(root)
        self.records = self.source.scan().samples
        self.out = out
        self.renderers = {}

    def renderer_for(self, width: int, height: int):
        if (width, height) not in self.renderers:
            self.renderers[width, height] = make_renderer("pyrender", width, height)
        return self.renderers[width, height]

    def run(self, index: int) -> dict:
        record = self.records[index]
        wall, cpu = [time.perf_counter()], [time.process_time()]
        scan = self.source.load(record)  # mesh, photo, texture and landmarks
        wall.append(time.perf_counter()), cpu.append(time.process_time())
        aligned = align.align_bu3dfe(scan, self.renderer_for)
        wall.append(time.perf_counter()), cpu.append(time.process_time())
        rgb, depth, _ = crop_and_encode(aligned, RenderOptions())
        write_png(self.out / "rgb.png", rgb)
        write_png(self.out / "depth.png", depth)
        wall.append(time.perf_counter()), cpu.append(time.process_time())
        return {
            "sample_id": record.sample_id,
            "mesh": record.files["mesh"].relative_to(self.source.root).as_posix(),
            "ms": dict(zip(STAGES, np.diff(wall) * 1e3, strict=True)),
            "cpu_ms": dict(zip(STAGES, np.diff(cpu) * 1e3, strict=True)),
            "camera": {k: float(aligned.quality[k]) for k in ("scale", "tx", "ty")},
            "checks": {c.name: float(c.ratio) for c in aligned.checks},
        }


def main() -> None:
    root, out, cpu = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    os.sched_setaffinity(0, {cpu})  # one core, whatever threads the libraries start
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(root, out)
    hello = {"version": fer3d_bench.__version__, "package": str(Path(fer3d_bench.__file__).parent)}
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        print(json.dumps(stages.run(json.loads(line)["index"])), flush=True)


if __name__ == "__main__":
    main()
