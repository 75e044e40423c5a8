"""A full-size dry run: every stage on the datasets at their real sizes, and at a quarter of them.

Generates the procedural sample at a fraction of the real subject counts (BU-3DFE 100, Bosphorus
105, CalD3r 104, MenD3s 92), with what the generator gives per subject: BU-3DFE's real 25 scans,
Bosphorus's 21 scan kinds (14 of them in the seven classes; the real dataset has about 44 scans a
subject, the paper uses 466 samples in all), and CalD3r & MenD3s at `--per-class` samples per
subject and class (6 by default: 8,232 samples, against the real 8,617 / 196 subjects / 7 classes
= 6.3). The make-sample command has no option for that count, so this stage calls
`make_sample` in a child process of its own. Then it renders each dataset at 260 px
(`render-depth --workers N`), merges them (`build-dataset`, reusing those renders), reads the
file back (`verify`), writes the manifests of the protocols that apply (`splits generate`;
bu3dfe-legacy only where 60 BU-3DFE subjects exist) and trains fold 0 of bu3dfe-full for one
epoch with the `tiny` preset on the CPU (`train`: the cheapest real fold).

Each stage is one command in a child process: its wall time, the peak RSS of its largest
process (`ru_maxrss` of that child alone, from `os.wait4`, so never a maximum over earlier
stages) and the peak RSS of its whole process tree (workers included, sampled from /proc every
0.2 s) are printed per size, with the ratios of the largest size to the smallest beside the
ratio of their sample counts: time and bytes on disk should grow with the samples, memory
should not (the build streams).

    .venv/bin/python benchmarks/scale_bench.py [--sizes quarter whole] [--workers 2]
        [--work DIR] [--keep]

`--fraction 0.05 0.1` runs other fractions of the real counts instead (a quick check). Without
`--work` it runs in a temporary folder; a size's files are deleted once it is measured, unless
`--keep`. Slow (the whole size renders about 12,900 samples); not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = str(BIN / "fer3d-bench")
SIZES = {"quarter": 0.25, "whole": 1.0}
REAL_SUBJECTS = {"bu3dfe": 100, "bosphorus": 105, "cald3r": 104, "mend3s": 92}
RENDERED = {"bu3dfe": "bu3dfe", "bosphorus": "bosphorus", "cald3r-mend3s": "cald3r-mend3s"}
PROTOCOLS = ("bu3dfe-full", "cald3r-mend3s", "cald3r-mend3s-6", "cross-dataset", "merged")
LEGACY_SUBJECTS = 60  # bu3dfe-legacy draws 60 BU-3DFE subjects: only sizes that have them
TRAIN_PROTOCOL = "bu3dfe-full"  # fold 0: 80 % of BU-3DFE in training, the cheapest real fold

GENERATE = """
import sys
from pathlib import Path
from fer3d_bench.synthetic import SampleConfig, make_sample
bu, bos, cal, men, per_class, workers = map(int, sys.argv[2:8])
config = SampleConfig(bu3dfe_subjects=bu, bosphorus_subjects=bos, cald3r_subjects=cal,
                      mend3s_subjects=men, cald3r_samples_per_class=per_class)
print(make_sample(Path(sys.argv[1]), config, workers=workers, progress=True))
"""


@dataclass
class Stage:
    name: str
    seconds: float
    max_rss: int  # bytes, the command's largest process
    tree_rss: int  # bytes, the command's processes together, sampled
    output: int  # bytes the stage wrote (0 where nothing measured)


@dataclass
class Run:
    label: str
    fraction: float
    subjects: dict
    samples: int = 0
    stages: list[Stage] = field(default_factory=list)


def subjects_at(fraction: float) -> dict[str, int]:
    return {name: max(1, round(n * fraction)) for name, n in REAL_SUBJECTS.items()}


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and every descendant, from /proc (0 once it is gone)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        rss[child] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack += children.get(current, [])
    return total


def run_stage(name: str, argv: list[str], log: Path, output: Path | None = None) -> Stage:
    """Run one command to its end; its time, its own peak RSS and its tree's sampled peak."""
    env = {**os.environ, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "osmesa")}
    with log.open("w") as sink:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], tree_rss(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not cumulative
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{name} exited {child.returncode}: {' '.join(argv)}\n{tail}")
    size = folder_bytes(output) if output else 0
    return Stage(name, seconds, usage.ru_maxrss * 1024, max(peak[0], usage.ru_maxrss * 1024), size)


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def stages(base: Path, subjects: dict, per_class: int, workers: int) -> list[tuple]:
    """(name, argv, what it writes) of every stage, in order."""
    sample, render = base / "sample", base / "render"
    merged, manifests = base / "merged.h5", base / "manifests"
    counts = [subjects[k] for k in ("bu3dfe", "bosphorus", "cald3r", "mend3s")]
    generate = [sys.executable, "-c", GENERATE, str(sample), *map(str, counts)]
    out = [("make-sample", [*generate, str(per_class), str(workers)], sample)]
    for dataset, folder in RENDERED.items():
        argv = [CLI, "render-depth", str(sample / folder), "--dataset", dataset]
        argv += ["--out", str(render / dataset), "--size", "260", "--workers", str(workers)]
        out.append((f"render {dataset}", argv, render / dataset))
    roots = [a for d, f in RENDERED.items() for a in (f"--{d}", str(sample / f))]
    build = [CLI, "build-dataset", *roots, "--out", str(merged), "--render-dir", str(render)]
    out.append(("build-dataset", [*build, "--size", "260", "--workers", str(workers)], merged))
    out.append(("verify", [CLI, "verify", str(merged)], None))
    protocols = [a for p in PROTOCOLS for a in ("--protocol", p)]
    splits = [CLI, "splits", "generate", *protocols, "--dataset", str(merged)]
    out.append(("splits generate", [*splits, "--out", str(manifests)], manifests))
    if subjects["bu3dfe"] >= LEGACY_SUBJECTS:
        legacy = [CLI, "splits", "generate", "--protocol", "bu3dfe-legacy"]
        legacy += ["--dataset", str(merged), "--out", str(base / "legacy")]
        out.append(("splits bu3dfe-legacy", legacy, base / "legacy"))
    train = [CLI, "train", "--dataset", str(merged), "--out", str(base / "train")]
    train += ["--manifest", str(manifests / TRAIN_PROTOCOL / "1.0.0.json")]
    train += ["--preset", "tiny", "--epochs", "1", "--device", "cpu"]
    out.append((f"train tiny, {TRAIN_PROTOCOL}, 1 epoch", train, None))
    return out


def merged_samples(merged: Path) -> dict[str, int]:
    import h5py

    with h5py.File(merged, "r") as h5:
        counts = json.loads(h5.attrs["counts"])
    return {name: sum(row.values()) for name, row in counts.items()}


def measure(run: Run, base: Path, per_class: int, workers: int) -> None:
    base.mkdir(parents=True, exist_ok=True)
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    (base / "render").mkdir(exist_ok=True)
    print(
        f"\n{run.label}: subjects {run.subjects}, {per_class} per class and subject in "
        f"CalD3r & MenD3s, in {base}",
        flush=True,
    )
    for k, (name, argv, output) in enumerate(stages(base, run.subjects, per_class, workers)):
        slug = "-".join(name.replace(",", "").split()[:2])
        stage = run_stage(name, argv, logs / f"{k:02d}-{slug}.log", output)
        run.stages.append(stage)
        print(
            f"  {name:<32} {stage.seconds:8.1f} s  {mib(stage.max_rss):7.0f} MiB largest "
            f"process  {mib(stage.tree_rss):7.0f} MiB all  {mib(stage.output):8.1f} MiB out",
            flush=True,
        )
        if name == "build-dataset":
            counts = merged_samples(base / "merged.h5")
            run.samples = sum(counts.values())
            print(f"  merged: {run.samples} samples {counts}", flush=True)


def mib(n: int) -> float:
    return n / 2**20


def table(runs: list[Run]) -> str:
    """Per stage and size: seconds, MiB of the largest process and of all, MiB written."""
    lines = [
        "| stage | "
        + " | ".join(f"{r.label}: s | {r.label}: MiB max / all | {r.label}: MiB out" for r in runs)
        + " |"
    ]
    lines.append("|---" * (1 + 3 * len(runs)) + "|")
    for stage in runs[-1].stages:
        cells = []
        for r in runs:
            s = next((x for x in r.stages if x.name == stage.name), None)
            cells += (
                ["-"] * 3
                if s is None
                else [
                    f"{s.seconds:.0f}",
                    f"{mib(s.max_rss):.0f} / {mib(s.tree_rss):.0f}",
                    f"{mib(s.output):.1f}" if s.output else "-",
                ]
            )
        lines.append(f"| {stage.name} | " + " | ".join(cells) + " |")
    total = [f"{sum(s.seconds for s in r.stages):.0f}" for r in runs]
    lines.append("| total | " + " | ".join(cell for t in total for cell in (t, "", "")) + " |")
    return "\n".join(lines)


def ratios(small: Run, large: Run) -> str:
    lines = [
        f"{large.label} / {small.label}: samples {large.samples / small.samples:.2f}x",
        f"  {'stage':<32} {'time':>7} {'max RSS':>8} {'all RSS':>8} {'written':>8}",
    ]
    for stage in large.stages:
        base = next((x for x in small.stages if x.name == stage.name), None)
        if base is None:
            lines.append(f"  {stage.name:<32} (only at {large.label})")
            continue
        out = f"{stage.output / base.output:7.2f}x" if base.output else "       -"
        lines.append(
            f"  {stage.name:<32} {stage.seconds / base.seconds:6.2f}x "
            f"{stage.max_rss / base.max_rss:7.2f}x {stage.tree_rss / base.tree_rss:7.2f}x {out}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    choice.add_argument("--fraction", nargs="+", type=float, help="fractions of the real sizes")
    parser.add_argument(
        "--per-class",
        type=int,
        default=6,
        help="CalD3r & MenD3s samples per "
        "subject and class (real: 8,617 samples / 196 subjects / 7 classes)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, help="folder to run in (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep every size's files")
    args = parser.parse_args()
    fractions = (
        {f"{f:g}": f for f in args.fraction} if args.fraction else {s: SIZES[s] for s in args.sizes}
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        for label, fraction in sorted(fractions.items(), key=lambda item: item[1]):
            run = Run(label, fraction, subjects_at(fraction))
            measure(run, work / label, args.per_class, args.workers)
            runs.append(run)
            if not args.keep:
                shutil.rmtree(work / label)
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs, --workers {args.workers}, 260 px\n")
    print(table(runs))
    if len(runs) > 1:
        print()
        print(ratios(runs[0], runs[-1]))


if __name__ == "__main__":
    main()
