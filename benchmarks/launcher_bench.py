"""The same 2 `tiny` folds trained here (`--jobs 2`) and as two 1-CPU Slurm jobs, in one run.

A third arm runs the two Slurm jobs as 0.11 did, each with as many torch threads as the node has
cores instead of its allocation's one, to show what setting them is worth.

The cluster is the one-node cluster of scripts/slurm-cluster.sh (started and stopped here unless
one is already up). Each round runs both launchers on fresh run folders, alternating which goes
first; the figure compared is each fold's own training time (`seconds` of its result.json: set-up,
epochs and test passes, without the job's queueing and Python start-up), summed over the two
folds. Prints each round and the ratios Slurm / local of the medians (aim: within 1.2).

    .venv/bin/python benchmarks/launcher_bench.py [--rounds 5] [--epochs 5] [--subjects 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.evaluation.cluster import SlurmOptions, submit
from fer3d_bench.evaluation.launchers import LAUNCHERS, Launch
from fer3d_bench.evaluation.plan import EvalSpec
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.pipeline.evaluate import evaluate, plan_run
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.synthetic import SampleConfig, make_sample
from fer3d_bench.train.environment import Placement, TrainingEnvironment

CPU = TrainingEnvironment(placement=Placement("cpu"))

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "scripts" / "slurm-cluster.sh"


def sample(base: Path, subjects: int) -> tuple[Path, Path]:
    """A BU-3DFE sample at 64 px with its bu3dfe-legacy manifest: (merged.h5, manifests)."""
    config = SampleConfig(
        seed=5, bu3dfe_subjects=subjects, bosphorus_subjects=0, cald3r_subjects=0, mend3s_subjects=0
    )
    make_sample(base / "sample", config, workers=2, progress=False)
    merged = base / "merged.h5"
    build_dataset(
        {"bu3dfe": base / "sample" / "bu3dfe"},
        merged,
        BuildOptions(render=RenderOptions(size=64)),
        render_dir=base / "render",
        progress=False,
    )
    protocol = sp.load_protocol("bu3dfe-legacy")
    sp.write_manifest(sp.make_manifest(protocol, items_from_h5(merged), "bench"), base / "m")
    return merged, base / "m"


def training_seconds(out: Path) -> float:
    results = [json.loads(p.read_text()) for p in sorted(out.rglob("result.json"))]
    assert len(results) == 2 and all(r["status"] == "ok" for r in results), out
    return sum(r["seconds"] for r in results)


def run(arm: str, merged: Path, manifests: Path, out: Path, epochs: int) -> float:
    launcher = "local" if arm == "local" else "slurm"
    spec = EvalSpec(
        dataset=merged,
        protocols=("bu3dfe-legacy",),
        out=out,
        manifests=manifests,
        preset="tiny",
        overrides={"epochs": epochs},
        repetitions=1,
        max_folds=2,
        launcher=launcher,
        environment=CPU,
    )
    slurm = SlurmOptions(cpus_per_task=1, gpus_per_node=0, mem_gb=2, wait_timeout_min=30)
    launch = Launch(jobs=2 if launcher == "local" else 1, wait=True, slurm=slurm, progress=False)
    if arm == "unpinned":  # 0.11: no thread count set, so torch's default, the node's cores
        launcher = LAUNCHERS["slurm"](launch)
        unpinned = spec.environment.placed(threads=os.cpu_count())
        jobs = plan_run(replace(spec, environment=unpinned), launcher).pending()
        submit(jobs, out, "slurm", slurm, wait=True, echo=lambda line: None)
    else:
        evaluate(spec, launch, echo=lambda line: None, report=False)
    return training_seconds(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=6)
    args = parser.parse_args()
    started = subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True).returncode
    if started:
        subprocess.run(["bash", str(CLUSTER), "start"], check=True)
    os.environ["SLURM_CONF"] = str(ROOT / ".slurm" / "slurm.conf")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            merged, manifests = sample(base, args.subjects)
            arms = ("local", "slurm", "unpinned")
            times: dict[str, list[float]] = {arm: [] for arm in arms}
            for k in range(args.rounds):
                for arm in arms[k % 3 :] + arms[: k % 3]:  # each arm first in turn
                    out = base / f"{arm}-{k}"
                    times[arm].append(run(arm, merged, manifests, out, args.epochs))
                print(
                    f"round {k + 1}: local --jobs 2 {times['local'][-1]:6.2f} s, "
                    f"two 1-CPU Slurm jobs {times['slurm'][-1]:6.2f} s, the same with the "
                    f"node's {os.cpu_count()} threads each {times['unpinned'][-1]:6.2f} s "
                    "(training time, 2 folds)"
                )
            local, slurm, unpinned = (statistics.median(times[arm]) for arm in arms)
            print(
                f"median: local {local:.2f} s, slurm {slurm:.2f} s, unpinned {unpinned:.2f} s; "
                f"slurm / local = {slurm / local:.2f} (aim: at most 1.2), "
                f"unpinned / local = {unpinned / local:.2f}"
            )
    finally:
        if started:
            subprocess.run(["bash", str(CLUSTER), "stop"], check=False)


if __name__ == "__main__":
    main()
