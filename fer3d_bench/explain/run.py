"""`fer3d-bench explain RUN`: Grad-CAM over RGB and depth for correctly classified test samples.

A run folder comes from other people: its run.json and result.json go through the records'
readers, its checkpoint through the trainer's safe reader (tensors only), the dataset must be
the one the run was trained on (fingerprint), and everything is written under --out. The samples
are the first `per_class` correctly classified test samples of each class, in sorted id order,
so the same run always explains the same samples.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import Normalisation
from fer3d_bench.errors import Fer3dError
from fer3d_bench.explain.gradcam import grad_cam
from fer3d_bench.io import atomic_path, inside, output_folder
from fer3d_bench.plots import save_figure
from fer3d_bench.records.job import variant_prefix
from fer3d_bench.records.result import read_result
from fer3d_bench.records.run import read_run_info
from fer3d_bench.train.checkpoint import read_checkpoint
from fer3d_bench.train.config import FULL, config_from_dict
from fer3d_bench.train.data import FerTorchDataset
from fer3d_bench.train.model import FerNet

HEAT_CMAP = "jet"
FOLDS_SHOWN = 5  # folds listed when --fold names none of the run's
NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
# printed by the command and put under the figure's title when the model has the transformer head
TRANSFORMER_NOTE = (
    "note: heatmaps behind the transformer head are weak evidence of where the model looks "
    "(on a toy neither method reliably found the deciding patch through it; see the README)"
)


@dataclass
class Explained:
    figure: Path
    heatmaps: Path
    samples: list[str]  # sample ids, class by class
    short: dict[str, int]  # class -> how many correct samples it had, where fewer than asked
    note: str | None = None  # TRANSFORMER_NOTE for a transformer-head model


def explain(
    run_dir: Path,
    fold: str | None = None,
    variant: str = FULL,
    dataset: Path | None = None,
    per_class: int = 2,
    out: Path | None = None,
    method: str = "gradcam",
) -> Explained:
    """Heatmaps of one fold of `run_dir` (default: the first fold of its first protocol)."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir / "run.json")
    fold = fold or f"{next(iter(info.protocols))}/0/0"
    folder = fold_folder(run_dir, variant, fold)
    result = read_result(folder / "result.json")
    if not result.ok:
        raise Fer3dError(f"{folder / 'result.json'}: the fold failed ({result.reason})")
    out = inside(run_dir, Path(out) if out else run_dir / "figures" / "explain")
    if result.job.training is None:
        raise Fer3dError(f"{folder / 'result.json'}: scored predictions: no model to explain")
    saved = read_checkpoint(folder / "checkpoint.pt")
    config = config_from_dict(result.job.training.config, folder / "result.json")
    model = FerNet(replace(config.model, num_classes=len(result.classes)))
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as exc:
        problem = str(exc).splitlines()[0]
        message = f"{folder / 'checkpoint.pt'}: does not fit the fold's model ({problem})"
        raise Fer3dError(message) from None
    chosen, short = choose(result.predictions, result.classes, per_class)
    if not chosen:
        raise Fer3dError(f"{folder / 'result.json'}: no correctly classified test sample")
    path = Path(dataset or info.dataset["path"])
    with H5Dataset(path) as data:
        if data.fingerprint != info.fingerprint:
            raise Fer3dError(
                f"{path}: is not the dataset {run_dir} was trained on (fingerprint "
                f"{data.fingerprint[:12]}..., the run's {str(info.fingerprint)[:12]}...)"
            )
        rgb, depth, images = _inputs(data, chosen, saved["normalisation"], config)
    targets = [result.classes.index(result.predictions[s]["true"]) for s in chosen]
    maps = grad_cam(model.eval(), rgb, depth, targets, method=method)
    name = f"{variant}_{fold.replace('/', '_')}_{method}"
    output_folder(run_dir, out)  # made only now, and never through a link planted in the run
    heatmaps = _save_maps(out / f"{name}.npz", chosen, targets, maps)
    title = f"{variant} / {fold}: {NAMES[method]} of the true (and predicted) class"
    note = TRANSFORMER_NOTE if config.model.head == "transformer" else None
    if note:
        title += "\n" + textwrap.fill(note, 72)
    figure = draw(out / f"{name}.png", chosen, result, images, maps, title)
    return Explained(figure, heatmaps, chosen, short, note)


def fold_folder(run_dir: Path, variant: str, fold: str) -> Path:
    """The folder of `fold` (PROTOCOL/REP/FOLD) of `variant` in `run_dir`; refused, with the
    expected form and the folds the run has, when it is not one of them."""
    prefix = run_dir / variant_prefix(variant)
    if re.fullmatch(r"[^/\\]+/\d+/\d+", fold) and (prefix / fold / "result.json").is_file():
        return inside(run_dir, prefix / fold)
    found = sorted(
        (p.parent.relative_to(prefix).as_posix() for p in prefix.glob("*/*/*/result.json")),
        key=lambda name: [int(part) if part.isdigit() else part for part in name.split("/")],
    )
    shown = ", ".join(found[:FOLDS_SHOWN])
    if len(found) > FOLDS_SHOWN:
        shown += f" and {len(found) - FOLDS_SHOWN} more"
    where = f"{variant} folds in {run_dir}" if variant != FULL else f"folds in {run_dir}"
    has = f"the {where}: {shown}" if found else f"no {where} has a result.json yet"
    problem = f"is not a finished fold of {run_dir} (expected PROTOCOL/REPETITION/FOLD, e.g. "
    problem += f"{found[0] if found else 'bu3dfe-full/0/0'}, 0-based as the folders); {has}"
    raise Fer3dError(f"fold={fold!r} {problem}", cli=f"--fold {fold} {problem}")


def choose(predictions: dict, classes: list[str], per_class: int):
    """(sample ids, class -> count where fewer than `per_class`): correct ones, sorted by id."""
    chosen, short = [], {}
    for name in classes:
        ids = sorted(s for s, p in predictions.items() if p["true"] == p["pred"] == name)
        chosen += ids[:per_class]
        if len(ids) < per_class:
            short[name] = len(ids)
    return chosen, short


def _inputs(data: H5Dataset, ids: list[str], normalisation: dict, config):
    """Normalised tensors exactly as the trainer's test pass builds them, and the raw images."""
    norm = Normalisation(
        tuple(normalisation["rgb_mean"]),
        tuple(normalisation["rgb_std"]),
        float(normalisation["depth_mean"]),
        float(normalisation["depth_std"]),
    )
    indices = np.array([data.index_of(s) for s in ids])
    dataset = FerTorchDataset(data, indices, norm, config.model.input_size, None, config.seed)
    items = [dataset[k] for k in range(len(dataset))]
    images = [(data[int(i)].rgb, data[int(i)].depth) for i in indices]
    return torch.stack([r for r, _, _ in items]), torch.stack([d for _, d, _ in items]), images


def _save_maps(path: Path, ids: list[str], targets: list[int], maps) -> Path:
    arrays = {"sample_ids": np.array(ids), "targets": np.array(targets), "rgb": maps.rgb}
    if maps.depth is not None:
        arrays["depth"] = maps.depth
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        np.savez(stream, **arrays)
    return path


def draw(path: Path, ids: list[str], result, images, maps, title: str) -> Path:
    """Rows = samples; columns: RGB under its heatmap, depth under its heatmap."""
    streams = 1 if maps.depth is None else 2
    fig = Figure(figsize=(2.4 * streams + 0.8, 2.4 * len(ids) + 0.4), layout="constrained")
    axes = fig.subplots(len(ids), streams)
    axes = np.array(axes).reshape(len(ids), streams)
    for row, sample in enumerate(ids):
        rgb, depth = images[row]
        label = result.predictions[sample]["true"]
        panels = [(rgb, maps.rgb[row], "RGB")]
        if maps.depth is not None:
            panels.append((depth, maps.depth[row], "depth"))
        for col, (image, heat, stream) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image, cmap=None if image.ndim == 3 else "gray", extent=(0, 1, 1, 0))
            heat_image = ax.imshow(
                heat, cmap=HEAT_CMAP, alpha=0.45, vmin=0, vmax=1, extent=(0, 1, 1, 0)
            )
            ax.set_title(f"{label}: {stream}\n{sample}", fontsize=7)
            ax.set_axis_off()
    fig.suptitle(title, fontsize=8)
    # one scale for every panel (each map is normalised to [0, 1]), said once at the right
    bar = fig.colorbar(heat_image, ax=axes.ravel().tolist(), shrink=0.6, fraction=0.05, pad=0.02)
    bar.set_label("class activation (each map scaled to its maximum)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    return save_figure(fig, path, tight=False)
