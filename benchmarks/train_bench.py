"""What the fusion network and the data pipeline cost on top of the two backbones.

In one run, on the same batch: (a) two plain timm backbones (classification models, as the
paper's two streams), forward + backward; (b) one training step of the full reference model
(backbones, cross-modal attention, transformer, losses, AdamW and centers steps); (c) the data
pipeline producing that batch from the merged HDF5 file with augmentation. Prints image pairs per
second and the overhead ratios (aim: (b + c) within 15 % of (a)).

    .venv/bin/python benchmarks/train_bench.py [--backbone efficientnet_b2] [--size 260]
        [--batch 8] [--steps 3] [--device auto]   # on a GPU, AMP (bf16) is used as in training
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import timm
import torch

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.dataset.statistics import fold_statistics
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.synthetic import SampleConfig, make_sample
from fer3d_bench.train.config import PRESETS
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset
from fer3d_bench.train.device import resolve, torch_device
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.losses import FerLoss, centers_optimizer, class_weights
from fer3d_bench.train.model import FerNet


def timed(step, steps: int, device) -> float:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_b2")
    parser.add_argument("--size", type=int, default=260)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = torch_device(resolve(Placement(args.device)))
    amp = device.type == "cuda"
    layout = torch.channels_last if amp else torch.contiguous_format
    cast = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    torch.manual_seed(0)
    rgb = torch.randn(args.batch, 3, args.size, args.size, device=device).to(memory_format=layout)
    depth = torch.randn(args.batch, 1, args.size, args.size, device=device)
    labels = torch.arange(args.batch, device=device) % 7

    streams = [
        timm.create_model(args.backbone, num_classes=7).to(device, memory_format=layout)
        for _ in range(2)
    ]

    def plain():
        with torch.autocast(device.type, dtype=cast, enabled=amp):
            loss = sum(
                s(rgb if k == 0 else depth.expand(-1, 3, -1, -1)).float().sum()
                for k, s in enumerate(streams)
            )
        loss.backward()

    config = replace(PRESETS["paper"].model, backbone=args.backbone, input_size=args.size)
    model = FerNet(config).to(device, memory_format=layout)
    criterion = FerLoss(7, config.token_dim, class_weights(labels.cpu(), 7).to(device)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    centers = centers_optimizer(criterion)

    def full():
        with torch.autocast(device.type, dtype=cast, enabled=amp):
            logits, embedding = model(rgb, depth)
            loss, _ = criterion(logits.float(), embedding.float(), labels)
        loss.backward()
        criterion.rescale_center_grads()
        optimizer.step()
        centers.step()
        optimizer.zero_grad(set_to_none=True)
        centers.zero_grad(set_to_none=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sample = SampleConfig(
            bu3dfe_subjects=0,
            bosphorus_subjects=0,
            cald3r_subjects=2,
            mend3s_subjects=0,
            cald3r_samples_per_class=1,
        )
        make_sample(tmp / "s", sample, workers=1, progress=False)
        build_dataset(
            {"cald3r-mend3s": tmp / "s" / "cald3r-mend3s"},
            tmp / "m.h5",
            BuildOptions(render=RenderOptions(size=args.size)),
            progress=False,
        )
        data = H5Dataset(tmp / "m.h5")
        indices = torch.arange(len(data)).numpy()
        dataset = FerTorchDataset(
            data, indices, fold_statistics(data, indices), args.size, AugmentConfig()
        )

        def pipeline():
            batch = [dataset[k % len(dataset)] for k in range(args.batch)]
            torch.stack([b[0] for b in batch]).to(device)
            torch.stack([b[1] for b in batch]).to(device)

        t_plain = timed(plain, args.steps, device)
        t_full = timed(full, args.steps, device)
        t_data = timed(pipeline, args.steps, device)
    print(
        f"{args.backbone} at {args.size}x{args.size}, batch {args.batch}, {device}"
        f"{' with AMP (' + str(cast).split('.')[-1] + ')' if amp else ''}"
    )
    print(f"  (a) two plain timm streams, fwd+bwd : {args.batch / t_plain:8.2f} pairs/s")
    print(
        f"  (b) full reference model, one step  : {args.batch / t_full:8.2f} pairs/s "
        f"({t_full / t_plain - 1:+.1%} vs a)"
    )
    print(
        f"  (c) data pipeline for the batch     : {args.batch / t_data:8.2f} pairs/s "
        f"(+{t_data / t_plain:.1%} of a, overlappable with workers)"
    )
    print(f"  (b + c) / a: {(t_full + t_data) / t_plain:.3f}")


if __name__ == "__main__":
    main()
