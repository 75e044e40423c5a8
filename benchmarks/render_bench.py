"""Where the time of `render-depth` goes per BU-3DFE sample, against 0.13, and how it scales.

Prints, in one run on a generated sample (about 8,000 vertices, 15,700 triangles, 512x512
photos):
  1. median milliseconds per sample and stage (parse, align, crop+write; wall clock, and the
     process's CPU time, which a loaded machine inflates less), one core, renderers reused as in
     a worker, for 0.13's whole per-sample path (its `fer3d_bench` package as it
     was at commit V013, taken from git with `git archive`) beside this version's, and the
     ratio; and how far each puts the camera from the generator's truth. Each version runs in a
     process of its own (`render_stages.py`, its package first on PYTHONPATH), both pinned to
     the same core, and they take the samples in turns (which goes first alternates), so that
     the load of a shared machine falls on both alike;
  2. samples per second of the whole command (render_dataset, pyrender) over the sample with
     1 and 2 workers, in alternating rounds, and the ratio of the medians.
Absolute times on a shared machine are noise; compare the ratios within one run.

    .venv/bin/python benchmarks/render_bench.py [--subjects 12] [--stage-samples 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from fer3d_bench.formats import read_vrml
from fer3d_bench.render.run import render_dataset
from fer3d_bench.render.worker import RenderOptions
from fer3d_bench.sources import BU3DFE
from fer3d_bench.synthetic import SampleConfig, make_sample

V013 = "45590c9"  # the 0.13.0 release
REPO = Path(__file__).resolve().parents[1]
STAGES = ("parse", "align", "crop+write")


def package_at(commit: str, folder: Path) -> Path:
    """`fer3d_bench/` as it was at `commit`, unpacked under `folder` (returned: its parent)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "fer3d_bench"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


class StageProcess:
    """A `render_stages.py` process running one version's code, pinned to `cpu`."""

    def __init__(self, package_root: Path, root: Path, out: Path, cpu: int):
        env = {**os.environ, "PYTHONPATH": str(package_root)}
        script = Path(__file__).with_name("render_stages.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(root), str(out), str(cpu)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.package_root = package_root
        self.hello = self._answer()

    def run(self, index: int) -> dict:
        self.process.stdin.write(json.dumps({"index": index}) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:  # its traceback is on stderr, above
            raise RuntimeError(f"render_stages.py with {self.package_root} ended early")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def interleaved(processes: dict, count: int) -> dict[str, list[dict]]:
    """Every process runs samples 0..count-1, one sample at a time and in turns; the first
    sample is run once more before, untimed (first render, caches)."""
    results = {name: [] for name in processes}
    order = list(processes)
    for name in order:
        processes[name].run(0)
    for index in range(count):
        turn = order if index % 2 == 0 else order[::-1]
        for name in turn:
            results[name].append(processes[name].run(index))
    return results


def medians(results: list[dict], clock: str = "ms") -> dict[str, float]:
    out = {stage: statistics.median(r[clock][stage] for r in results) for stage in STAGES}
    out["total"] = statistics.median(sum(r[clock].values()) for r in results)
    return out


def camera_errors(results: list[dict], truth: dict) -> np.ndarray:
    """|fitted - true| offset (px, the larger of |tx|, |ty|) of each sample that is not
    misaligned on purpose."""
    errors = []
    for result in results:
        expected = truth[result["mesh"]]
        if not expected["planted"]:
            fitted = result["camera"]
            errors.append(
                max(abs(fitted["tx"] - expected["f2d_tx"]), abs(fitted["ty"] - expected["f2d_ty"]))
            )
    return np.array(errors)


def stage_comparison(root: Path, tmp: Path, count: int, truth: dict) -> None:
    cpu = min(os.sched_getaffinity(0))
    old_root = package_at(V013, tmp / "v013")
    processes = {
        "0.13": StageProcess(old_root, root, tmp / "stages-0.13", cpu),
        "now": StageProcess(REPO, root, tmp / "stages-now", cpu),
    }
    try:
        for name, process in processes.items():
            print(
                f"   {name}: fer3d_bench {process.hello['version']} from {process.hello['package']}"
            )
            if not Path(process.hello["package"]).is_relative_to(process.package_root):
                raise RuntimeError(f"{name} did not run the package under {process.package_root}")
        results = interleaved(processes, count)
    finally:
        for process in processes.values():
            process.close()
    for clock, what in (("ms", "wall clock"), ("cpu_ms", "CPU time of the process")):
        old, new = medians(results["0.13"], clock), medians(results["now"], clock)
        print(f"   {what}:")
        print(f"   {'stage':<11}{'0.13':>9}{'now':>9}   now/0.13")
        for stage in old:
            ratio = new[stage] / old[stage]
            print(f"   {stage:<11}{old[stage]:>9.1f}{new[stage]:>9.1f}   {ratio:>5.2f}")
        paired = [
            sum(b[clock].values()) / sum(a[clock].values())
            for a, b in zip(results["0.13"], results["now"], strict=True)
        ]
        print(f"   median of the per-sample ratios (total): {statistics.median(paired):.2f}")
    print("   fitted offset against the generator's truth (px, larger of |tx|, |ty|):")
    for name in processes:
        errors = camera_errors(results[name], truth)
        print(
            f"   {name:<11}median {np.median(errors):.3f}, max {errors.max():.3f} "
            f"over {len(errors)} samples"
        )
    same = all(
        a["checks"].keys() == b["checks"].keys()
        and all((a["checks"][k] > 1) == (b["checks"][k] > 1) for k in a["checks"])
        for a, b in zip(results["0.13"], results["now"], strict=True)
    )
    print(f"   the same checks pass and fail in both versions: {'yes' if same else 'NO'}")


def worker_scaling(root: Path, tmp: Path, count: int, rounds: int) -> None:
    rates: dict[int, list[float]] = {1: [], 2: []}
    for round_ in range(rounds):
        for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
            started = time.perf_counter()
            render_dataset(
                root, "bu3dfe", tmp / f"out{workers}-{round_}", RenderOptions(), workers=workers,
                progress=False,
            )  # fmt: skip
            rates[workers].append(count / (time.perf_counter() - started))
    for workers, values in rates.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"   {workers} worker(s): {statistics.median(values):.2f} samples/s ({shown})")
    print(
        f"   2 workers / 1 worker: {statistics.median(rates[2]) / statistics.median(rates[1]):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12, help="BU-3DFE subjects (demo: 12)")
    parser.add_argument("--stage-samples", type=int, default=50, help="samples for part 1")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of part 2 (1 and 2 workers)")
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
        records = BU3DFE(root).scan().samples
        mesh = read_vrml(records[0].files["mesh"])
        print(
            f"{len(records)} BU-3DFE-sized samples: {len(mesh.vertices)} vertices, "
            f"{len(mesh.faces)} triangles, 512x512 photos, 260x260 crops\n"
        )
        count = min(args.stage_samples, len(records))
        truth = json.loads((tmp / "sample" / "ground_truth.json").read_text())["bu3dfe"]
        print(f"1. median ms per sample over {count} samples, one core, renderers reused")
        stage_comparison(root, tmp, count, truth)
        print(f"\n2. whole command (render_dataset, pyrender) over all {len(records)} samples")
        worker_scaling(root, tmp, len(records), args.rounds)


if __name__ == "__main__":
    main()
