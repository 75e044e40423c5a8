"""Training throughput on one GPU: each speed lever on and off, and many folds at once.

Trains folds of a legacy fold's size (648 training pairs, 72 test) with the `paper` preset (260
px, AMP) as `evaluate --device cuda` does: each fold a spawned process with its fold held on the
GPU (`resident=True`: read once, batched and augmented there). It measures image pairs per
second over steady epochs (training pass, test pass and checkpoint; the first epoch is left
out), first for one fold with each lever against the baseline (CUDA's defaults as they are),
then for the best combination of the speed levers with 1, 4 and 8 folds at once, and from the
best projects the legacy protocol: 1,000 trainings x 20 epochs x 648 pairs, test passes
included, in waves of N.

Two kinds of lever. Configuration (they change the numbers a fold ends with, so they are part
of its configuration and identity): the micro-batch (`batch_size`, same `effective_batch`:
fewer accumulation steps, but batch-norm statistics of larger batches) and the AMP dtype
(`amp_dtype`). Speed (the same run within floating-point reordering; recorded, no part of the
identity: `--compile`, `--fused-adamw`, `--contiguous`, and folds at once, `--jobs`). The speed
levers that beat the baseline make the combination this would recommend as CUDA's default; the
configuration levers are reported, never folded into it.

Each process warms up on a few batches before the timed training, so CUDA's start-up is not
timed; that warm-up is where torch.compile compiles (and CUDA graphs are recorded): its time is
reported apart ("first call"), and the compile's cost as its excess over the baseline's. The
merged file holds random images written by the project's own writer, unless `--dataset` names
one (its first samples are used). Results go to `--json FILE` after every measurement, so a run
cut short keeps what it measured; `--budget-s` skips the levers that would start after that many
seconds (the folds-at-once rows, which the projection needs, still run).

Without a GPU it says so and stops. `--device cpu --preset tiny` is a quick smoke run of the
same code (a fold of 96 + 24 pairs; levers that need CUDA are "n/a on cpu"). `--quick` is what
scripts/gpu-check.sh runs: 256 + 32 pairs, 2 epochs, 1 and 4 folds at once, a 150 s budget.

    .venv/bin/python benchmarks/gpu_bench.py [--preset paper] [--concurrency 1 4 8]
        [--epochs 3] [--train-pairs 648] [--test-pairs 72] [--dataset FILE] [--device auto]
        [--levers NAME ...] [--quick] [--json FILE] [--budget-s S]
    .venv/bin/python benchmarks/gpu_bench.py --device cpu --preset tiny
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import queue
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.build import _Entry, write_h5
from fer3d_bench.processes import allocated_cpus, exit_with_parent
from fer3d_bench.sources import SampleRecord
from fer3d_bench.taxonomy import CLASSES
from fer3d_bench.train import loop
from fer3d_bench.train.config import PRESETS, TrainConfig, with_overrides
from fer3d_bench.train.device import resolve
from fer3d_bench.train.environment import Placement, Speed
from fer3d_bench.train.fold import TrainingFold

TRAININGS, EPOCHS, PAIRS = 1000, 20, 648  # the legacy protocol: 100 x 10 folds, the paper's
CONFIG, SPEED = "configuration", "speed"  # what a lever changes: the numbers, or the speed only
GAIN = 1.03  # a speed lever joins the recommended combination from 3% faster than the baseline
WAIT_S = 900  # the longest one measurement may take before it is called failed


def synthetic_file(out: Path, samples: int, size: int) -> Path:
    """A merged file of `samples` random pairs at `size` px, through the builder's writer."""
    rng = np.random.default_rng(0)
    images = out.parent / "images"
    images.mkdir()
    pngs = []
    for k in range(8):  # a few distinct pairs, shared by every sample: content is not timed
        rgb, depth = images / f"{k}_rgb.png", images / f"{k}_depth.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(rgb)
        Image.fromarray(rng.integers(0, 65536, (size, size), np.uint16)).save(depth)
        pngs.append((rgb, depth))
    entries = []
    for k in range(samples):
        name = f"bench:s{k:04d}"
        label = CLASSES[k % len(CLASSES)]
        record = SampleRecord(name, "bench", name, label, label, -1, None, {})
        rgb, depth = pngs[k % len(pngs)]
        entries.append(_Entry(record, images, {"status": "ok"}, rgb, depth, {}))
    write_h5(out, entries, {"synthetic": True}, {}, None, progress=False)
    return out


@dataclass(frozen=True)
class Lever:
    """One choice measured against the baseline: configuration keys or speed levers."""

    name: str
    kind: str  # CONFIG or SPEED
    setting: str  # what it changes, as the user sets it
    overrides: dict = field(default_factory=dict)  # TrainConfig keys
    speed: dict = field(default_factory=dict)  # Speed fields
    cuda_only: bool = False


def levers(config, cpu: bool) -> list[Lever]:
    """The levers for a preset on a device. The micro-batch is 4x the preset's (at most its
    effective batch, which stays: for `tiny` that is one micro-batch already); the layout lever
    is the other one than the device's default (channels-last on CUDA, contiguous on a CPU)."""
    micro = min(4 * config.batch_size, config.effective_batch)
    layout = ("--channels-last", True) if cpu else ("--contiguous (channels-last off)", False)
    return [
        Lever(
            "micro-batch",
            CONFIG,
            f"batch_size {config.batch_size} -> {micro} (effective_batch {config.effective_batch} "
            "kept: fewer accumulation steps; batch-norm sees larger batches)",
            {"batch_size": micro},
        ),
        Lever(
            "fp16",
            CONFIG,
            "amp_dtype auto (bf16 where supported) -> fp16, grad scaler on",
            {"amp_dtype": "fp16"},
            cuda_only=True,
        ),
        Lever("layout", SPEED, layout[0], speed={"channels_last": layout[1]}),
        Lever("fused-adamw", SPEED, "--fused-adamw", speed={"fused_adamw": True}, cuda_only=True),
        Lever("compile", SPEED, "--compile on", speed={"compile": "on"}),
        Lever(
            "cuda-graphs",
            SPEED,
            "--compile cuda-graphs (mode reduce-overhead)",
            speed={"compile": "cuda-graphs"},
            cuda_only=True,
        ),
    ]


def fold_worker(h5, folder, config, placement, pairs, threads, barrier, results) -> None:
    """One fold: warm up (compiling, if asked), wait for the others, train; to `results`
    (start, warm-up seconds, epoch ends, end), or ("error", message) if anything failed."""
    exit_with_parent()
    torch.set_num_threads(threads)
    train_idx, test_idx = np.arange(pairs[0]), np.arange(pairs[0], sum(pairs))
    ends = []
    save = loop.write_checkpoint

    def timed_save(path, state):  # the end of each epoch, its checkpoint written
        save(path, state)
        ends.append(time.monotonic())

    def run(out, config, train_idx, test_idx):
        fold = TrainingFold(h5, train_idx, test_idx)
        return loop.train(fold, out, config, placement, resident=True)

    try:
        few = 2 * config.batch_size
        warm = time.monotonic()
        run(folder / "warm-up", with_overrides(config, epochs=1), train_idx[:few], test_idx[:few])
        warm = time.monotonic() - warm
        loop.write_checkpoint = timed_save
        barrier.wait(timeout=WAIT_S)
        start = time.monotonic()
        run(folder / "fold", config, train_idx, test_idx)
        results.put((start, warm, ends, time.monotonic()))
    except Exception as exc:  # noqa: BLE001 - reported as this measurement's failure
        barrier.abort()
        first = (str(exc).strip().splitlines() or [""])[0]
        results.put(("error", f"{type(exc).__name__}: {first}"))


def measure(h5, runs: Path, config, placement, pairs, concurrency) -> dict:
    """Timings of `concurrency` folds trained at once, each in its own folder under `runs`;
    {"error": ...} where a fold failed or took longer than WAIT_S."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(concurrency), context.Queue()
    threads = max(1, allocated_cpus() // concurrency)  # as evaluate's pool shares them
    workers = [
        context.Process(
            target=fold_worker,
            args=(
                h5,
                runs / f"fold-{k}",
                with_overrides(config, seed=k),
                placement,
                pairs,
                threads,
                barrier,
                results,
            ),
        )
        for k in range(concurrency)
    ]
    for worker in workers:
        worker.start()
    timings, error = [], None
    deadline = time.monotonic() + WAIT_S
    while len(timings) < concurrency and error is None:
        try:
            got = results.get(timeout=5)
        except queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                error = f"a fold process ended with {dead[0]}" if dead else f"over {WAIT_S} s"
            continue
        if got[0] == "error":
            error = got[1]
        else:
            timings.append(got)
    for worker in workers:
        if error is not None:
            worker.terminate()
        worker.join()
    if error is not None:
        return {"error": error}
    first = min(start for start, _, _, _ in timings)
    steady = max(ends[-1] for *_, ends, _ in timings) - max(ends[0] for *_, ends, _ in timings)
    epoch = steady / (config.epochs - 1)  # all folds at once, after every first epoch
    setup_and_first = np.mean([ends[0] - start for start, _, ends, _ in timings])
    return {
        "pairs_per_s": concurrency * pairs[0] / epoch,
        "epoch_s": epoch,
        "first_call_s": float(np.mean([warm for _, warm, _, _ in timings])),
        "setup_and_first_s": float(setup_and_first),
        "tail_s": float(np.mean([end - ends[-1] for _, _, ends, end in timings])),
        "wall_s": max(end for *_, end in timings) - first,
    }


def projected(row: dict, concurrency: int, pairs: int) -> float:
    """Seconds for the legacy protocol at `row`'s pace, in waves of `concurrency` trainings."""
    scale = PAIRS / pairs  # an epoch's time grows with the fold (test pass alike)
    training = row["setup_and_first_s"] + (EPOCHS - 1) * row["epoch_s"] * scale + row["tail_s"]
    return math.ceil(TRAININGS / concurrency) * training


class Report:
    """What was measured, printed as it comes and written to the JSON file after each step."""

    def __init__(self, path: Path | None, head: dict):
        self.path, self.data = path, head | {"levers": [], "folds": [], "failed": []}

    def add(self, section: str, row: dict) -> None:
        self.data[section].append(row)
        if "error" in row:
            self.data["failed"].append(
                f"{row.get('lever', row.get('concurrency'))}: {row['error']}"
            )
        self.write()

    def write(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1) + "\n")


def lever_line(row: dict) -> str:
    name = f"  {row['lever']:<12} {row['kind']:<13}"
    if "pairs_per_s" not in row:
        return f"{name} {row.get('error') or row.get('skipped')}"
    ratio = f"{row['ratio']:.2f}x" if "ratio" in row else "     "
    compile_s = f", compile +{row['compile_s']:.0f} s" if row.get("compile_s") else ""
    return (
        f"{name} {row['pairs_per_s']:8.1f} pairs/s {ratio:>6}  first call "
        f"{row['first_call_s']:5.1f} s{compile_s}  ({row['setting']})"
    )


@dataclass(frozen=True)
class Bench:
    """One benchmark run's settings, and how to measure one setting under them."""

    h5: Path
    tmp: Path
    device: str
    preset: str
    config: TrainConfig  # the preset's, with the run's epochs
    pairs: tuple[int, int]
    budget_end: float | None  # time.monotonic() after which no lever starts

    def run(self, config, speed: Speed, n: int) -> dict:
        placement = resolve(Placement(self.device, speed=speed))
        folder = Path(tempfile.mkdtemp(prefix="runs-", dir=self.tmp))
        return measure(self.h5, folder, config, placement, self.pairs, n)

    def over_budget(self) -> bool:
        return self.budget_end is not None and time.monotonic() > self.budget_end


def parsed() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--concurrency", type=int, nargs="+", help="default: 1 4 8 (CPU: 1 2)")
    parser.add_argument("--epochs", type=int, help="timed epochs per fold (>= 2; default 3)")
    parser.add_argument("--train-pairs", type=int, help="default: 648 (CPU: 96)")
    parser.add_argument("--test-pairs", type=int, help="default: 72 (CPU: 24)")
    parser.add_argument("--dataset", type=Path, help="a merged file; default: random images")
    parser.add_argument("--levers", nargs="*", help="which levers (default: all; CPU: no compile)")
    parser.add_argument("--quick", action="store_true", help="256 + 32 pairs, 2 epochs, 1 and 4")
    parser.add_argument("--json", type=Path, help="write the results here as well")
    parser.add_argument("--budget-s", type=float, help="start no lever after this many seconds")
    args = parser.parse_args()
    if args.epochs is not None and args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not a steady one")
    known = [lever.name for lever in levers(PRESETS["tiny"], cpu=True)]
    unknown = sorted(set(args.levers or ()) - set(known))
    if unknown:
        parser.error(f"unknown lever(s) {unknown}; known: {known}")
    return args


def main() -> int:
    args = parsed()
    began = time.monotonic()
    if args.device != "cpu" and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here, nothing to measure (a smoke run of the same code")
        print("  on the CPU: benchmarks/gpu_bench.py --device cpu --preset tiny)")
        if args.json:
            Report(args.json, {"device": None, "skipped": "no CUDA device"}).write()
        return 0
    device = "cuda" if args.device != "cpu" else "cpu"
    cpu, quick = device == "cpu", args.quick
    epochs = args.epochs or (2 if quick else 3)
    concurrency = args.concurrency or ([1, 2] if cpu else [1, 4] if quick else [1, 4, 8])
    pairs = (
        args.train_pairs or (96 if cpu else 256 if quick else 648),
        args.test_pairs or (24 if cpu else 32 if quick else 72),
    )
    budget = args.budget_s if args.budget_s is not None else (150 if quick else None)
    config = with_overrides(PRESETS[args.preset], epochs=epochs)
    if math.ceil(pairs[0] / config.batch_size) < 2:
        raise SystemExit("gpu_bench: too few training pairs for two batches")
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        tmp = Path(tmp)
        if args.dataset:
            h5 = args.dataset.resolve()
        else:
            (tmp / "data").mkdir()
            h5 = synthetic_file(tmp / "data" / "merged.h5", sum(pairs), config.model.input_size)
        with H5Dataset(h5) as data:
            if len(data) < sum(pairs):
                raise SystemExit(f"{h5} holds {len(data)} samples, fewer than {sum(pairs)}")
        where = torch.cuda.get_device_name() if not cpu else f"CPU ({os.cpu_count()} cores)"
        amp = "" if cpu or not config.amp else f", AMP ({_auto_amp()})"
        print(
            f"{args.preset} preset ({config.model.backbone} at {config.model.input_size} px, "
            f"batch {config.batch_size} of {config.effective_batch}{amp}) on {where}, resident "
            f"data; folds of {pairs[0]} training + {pairs[1]} test pairs, {epochs} epochs each",
            flush=True,
        )
        head = {"device": where, "preset": args.preset, "pairs": list(pairs), "epochs": epochs}
        report = Report(args.json, head)
        end = None if budget is None else began + budget
        bench = Bench(h5, tmp, device, args.preset, config, pairs, end)
        best = measure_levers(bench, report, args.levers)
        measure_folds(bench, report, best, concurrency)
    summary(report, pairs[0], best, device)
    report.write()
    return 1 if report.data["failed"] else 0


def _auto_amp() -> str:
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def measure_levers(bench: Bench, report: Report, asked: list[str] | None) -> Speed:
    """One fold with each lever against the baseline; the recommended speed combination."""
    cpu = bench.device == "cpu"
    all_levers = levers(bench.config, cpu)
    print(f"one fold, each lever against the baseline ({bench.device}'s defaults as they are):")
    base = bench.run(bench.config, Speed(), 1)
    layout = "contiguous" if cpu else "channels-last"
    setting = f"batch_size {bench.config.batch_size}, {layout}, no compile, AdamW unfused"
    base |= {"lever": "baseline", "kind": "-", "setting": setting}
    report.add("levers", base)
    print(lever_line(base), flush=True)
    for lever in all_levers:
        row = {"lever": lever.name, "kind": lever.kind, "setting": lever.setting}
        changed = with_overrides(bench.config, **lever.overrides)
        if asked is not None and lever.name not in asked:
            row["skipped"] = "not asked for (--levers)"
        elif cpu and lever.cuda_only:
            row["skipped"] = "n/a on cpu"
        elif cpu and asked is None and lever.name == "compile":
            row["skipped"] = "not measured on cpu by default (--levers compile does)"
        elif lever.kind == CONFIG and changed == bench.config:
            row["skipped"] = f"n/a: the {bench.preset} preset has it already"
        elif bench.over_budget():
            row["skipped"] = "skipped: over the time budget (--budget-s)"
        else:
            row |= bench.run(changed, Speed(**lever.speed), 1)
            if "pairs_per_s" in row and "pairs_per_s" in base:
                row["ratio"] = row["pairs_per_s"] / base["pairs_per_s"]
                if "compile" in lever.speed:  # the warm-up's excess: compiling, recording
                    row["compile_s"] = max(0.0, row["first_call_s"] - base["first_call_s"])
        report.add("levers", row)
        print(lever_line(row), flush=True)
    best = recommended(report.data["levers"], all_levers)
    report.data["recommended"] = {"speed": asdict(best), "flags": flags(best)}
    return best


def measure_folds(bench: Bench, report: Report, best: Speed, concurrency: list[int]) -> None:
    """N folds at once with the recommended speed levers (the budget spares these: the
    projection needs them)."""
    print(f"folds at once, with the recommended speed levers ({flags(best) or 'none'}):")
    for n in concurrency:
        row = {"concurrency": n} | bench.run(bench.config, best, n)
        report.add("folds", row)
        if "pairs_per_s" not in row:
            print(f"  {n:2d} at once: {row['error']}", flush=True)
            continue
        print(
            f"  {n:2d} at once: {row['pairs_per_s']:8.1f} training pairs/s "
            f"({row['epoch_s']:6.2f} s per epoch of all {n}, test pass and checkpoint in; "
            f"set-up + first epoch {row['setup_and_first_s']:.1f} s; wall {row['wall_s']:.1f} s)",
            flush=True,
        )


def recommended(rows: list[dict], all_levers: list[Lever]) -> Speed:
    """The speed levers that beat the baseline by GAIN, together (compile: the faster mode)."""
    by_name = {lever.name: lever for lever in all_levers}
    fields: dict = {}
    faster = sorted(
        (r for r in rows if r.get("ratio", 0) >= GAIN and r["kind"] == SPEED),
        key=lambda r: r["ratio"],
    )
    for row in faster:  # the faster compile mode last, so it wins
        fields |= by_name[row["lever"]].speed
    return Speed(**fields)


def flags(speed: Speed) -> str:
    """The command-line options of a Speed, beyond the defaults."""
    words = []
    if speed.compile != "off":
        words.append(f"--compile {speed.compile}")
    if speed.fused_adamw:
        words.append("--fused-adamw")
    if speed.channels_last is not None:
        words.append("--channels-last" if speed.channels_last else "--contiguous")
    return " ".join(words)


def summary(report: Report, pairs: int, best: Speed, device: str) -> None:
    """The best of the folds-at-once rows, the projected legacy protocol, and what it would
    recommend as the device's default (the defaults stay until measured on the target GPU)."""
    done = [r for r in report.data["folds"] if "pairs_per_s" in r]
    if not done:
        print("nothing measured at once: no projection")
        return
    row = max(done, key=lambda r: r["pairs_per_s"])
    total = projected(row, row["concurrency"], pairs)
    scaled = f", epochs scaled from {pairs} pairs" if pairs != PAIRS else ""
    report.data["best"] = {"concurrency": row["concurrency"], "flags": flags(best)}
    report.data["projected_legacy_h"] = total / 3600
    print(
        f"best: {row['concurrency']} at once with {flags(best) or 'the defaults'}. Legacy "
        f"protocol ({TRAININGS:,} trainings x {EPOCHS} epochs x {PAIRS} pairs, test passes "
        f"included{scaled}): {total / 3600:.1f} h"
    )
    config_rows = [
        f"{r['lever']} {r['ratio']:.2f}x"
        for r in report.data["levers"]
        if r["kind"] == CONFIG and "ratio" in r
    ]
    print(
        f"would recommend as the {device} default: {flags(best) or 'the defaults as they are'} "
        f"(speed levers: the same results); --jobs {row['concurrency']}"
    )
    if config_rows:
        print(
            f"configuration levers ({', '.join(config_rows)}) change the numbers: each is part "
            "of the configuration, and of each fold's identity, never a silent default"
        )


if __name__ == "__main__":
    sys.exit(main())
