"""Many folds at once on one GPU: training throughput with each fold's data resident on it.

Trains folds of a legacy fold's size (648 training pairs, 72 test) with the `paper` preset (260
px, AMP) as `evaluate --jobs N --device cuda` does: N spawned processes at once on the one GPU,
each with its share of the cores as threads and its fold held on the GPU (`resident=True`:
read once, batched and augmented there). For 1, 4 and 8 at once it prints image pairs per second
over steady epochs (training pass, test pass and checkpoint), and from the best the projected
time of the legacy protocol: 1,000 trainings x 20 epochs x 648 pairs, test passes included, in
waves of N. The merged file holds random images written by the project's own writer, unless
`--dataset` names one (its first 720 samples are used). Each process warms up on a few batches
before all start together, so CUDA's start-up is not timed; set-up (reading the fold, building
the model) and the first epoch are timed once per training, the later epochs as steady ones.

Without a GPU it says so and stops. `--device cpu --preset tiny` is a quick smoke run of the
same code (a fold of 96 + 24 pairs, 1 and 2 at once, unless told otherwise).

    .venv/bin/python benchmarks/gpu_bench.py [--preset paper] [--concurrency 1 4 8]
        [--epochs 3] [--train-pairs 648] [--test-pairs 72] [--dataset FILE] [--device auto]
    .venv/bin/python benchmarks/gpu_bench.py --device cpu --preset tiny
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
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
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold

TRAININGS, EPOCHS, PAIRS = 1000, 20, 648  # the legacy protocol: 100 x 10 folds, the paper's


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


def fold_worker(h5, folder, config, device, pairs, threads, barrier, results) -> None:
    """One fold: warm up, wait for the others, train; (start, epoch ends, end) to `results`."""
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
        return loop.train(fold, out, config, Placement(device), resident=True)

    few = 2 * config.batch_size
    run(folder / "warm-up", with_overrides(config, epochs=1), train_idx[:few], test_idx[:few])
    loop.write_checkpoint = timed_save
    barrier.wait()
    start = time.monotonic()
    run(folder / "fold", config, train_idx, test_idx)
    results.put((start, ends, time.monotonic()))


def measure(h5, runs: Path, config, device, pairs, concurrency) -> dict:
    """Timings of `concurrency` folds trained at once, each in its own folder under `runs`."""
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
                device,
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
    timings = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit(f"a fold process failed (exit code {worker.exitcode})")
    first = min(start for start, _, _ in timings)
    steady = max(ends[-1] for _, ends, _ in timings) - max(ends[0] for _, ends, _ in timings)
    epoch = steady / (config.epochs - 1)  # all folds at once, after every first epoch
    setup_and_first = np.mean([ends[0] - start for start, ends, _ in timings])
    tail = np.mean([end - ends[-1] for _, ends, end in timings])
    return {
        "pairs_per_s": concurrency * pairs[0] / epoch,
        "epoch_s": epoch,
        "setup_and_first_s": float(setup_and_first),
        "tail_s": float(tail),
        "wall_s": max(end for _, _, end in timings) - first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--concurrency", type=int, nargs="+", help="default: 1 4 8 (CPU: 1 2)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per fold (>= 2)")
    parser.add_argument("--train-pairs", type=int, help="default: 648 (CPU: 96)")
    parser.add_argument("--test-pairs", type=int, help="default: 72 (CPU: 24)")
    parser.add_argument("--dataset", type=Path, help="a merged file; default: random images")
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here, nothing to measure (a smoke run of the same code")
        print("  on the CPU: benchmarks/gpu_bench.py --device cpu --preset tiny)")
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not a steady one")
    device = "cuda" if args.device != "cpu" else "cpu"
    cpu = device == "cpu"
    concurrency = args.concurrency or ([1, 2] if cpu else [1, 4, 8])
    pairs = (args.train_pairs or (96 if cpu else 648), args.test_pairs or (24 if cpu else 72))
    config = with_overrides(PRESETS[args.preset], epochs=args.epochs)
    if config.epochs * math.ceil(pairs[0] / config.batch_size) < 2:
        parser.error("too few training pairs for two batches")
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
        amp = ""
        if not cpu:
            cast = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            amp = f", AMP ({cast})" if config.amp else ""
        where = torch.cuda.get_device_name() if not cpu else f"CPU ({os.cpu_count()} cores)"
        print(
            f"{args.preset} preset ({config.model.backbone} at {config.model.input_size} px, "
            f"batch {config.batch_size}{amp}) on {where}, resident data; folds of "
            f"{pairs[0]} training + {pairs[1]} test pairs, {args.epochs} epochs each"
        )
        rows = {}
        for i, n in enumerate(concurrency):
            rows[n] = row = measure(h5, tmp / f"runs-{i}", config, device, pairs, n)
            print(
                f"  {n:2d} at once: {row['pairs_per_s']:8.1f} training pairs/s "
                f"({row['epoch_s']:6.2f} s per epoch of all {n}, test pass and checkpoint in; "
                f"set-up + first epoch {row['setup_and_first_s']:.1f} s; "
                f"wall {row['wall_s']:.1f} s)",
                flush=True,
            )
    best = max(rows, key=lambda n: rows[n]["pairs_per_s"])
    row = rows[best]
    scale = PAIRS / pairs[0]  # an epoch's time grows with the fold (test pass alike)
    training = row["setup_and_first_s"] + (EPOCHS - 1) * row["epoch_s"] * scale + row["tail_s"]
    total = math.ceil(TRAININGS / best) * training
    scaled = f", epochs scaled from {pairs[0]} pairs" if pairs[0] != PAIRS else ""
    print(
        f"best: {best} at once. Legacy protocol ({TRAININGS:,} trainings x {EPOCHS} epochs x "
        f"{PAIRS} pairs, test passes included{scaled}): {total / 3600:.1f} h "
        f"({math.ceil(TRAININGS / best)} waves of {training:.0f} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
