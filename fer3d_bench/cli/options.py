"""Options shared by several commands, written once; every choice read from its registry."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from fer3d_bench.records.conditions import SELECTIONS
from fer3d_bench.render.backends import BACKENDS
from fer3d_bench.render.options import RANGES, RenderOptions
from fer3d_bench.sources import SOURCES
from fer3d_bench.train.config import ABLATIONS, DEVICES, PRESETS
from fer3d_bench.train.environment import COMPILE_MODES, Placement, Speed, TrainingEnvironment
from fer3d_bench.weights.request import PretrainedWeights

DEFAULTS = RenderOptions()
EXCLUDE_FLAGGED_HELP = (
    "Leave training samples that render-depth flagged low-quality out (recorded, and named in "
    "the report's title); test folds stay the protocol's. Default: keep them, as the published "
    "protocols do."
)


def stack(*decorators):
    """Apply option decorators in the order written (the order --help lists them)."""

    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


dataset_choice = click.option(
    "--dataset", type=click.Choice(list(SOURCES)), required=True, help="Which dataset ROOT holds."
)
label_map_option = click.option(
    "--label-map", type=click.Path(path_type=Path), help="TOML overriding labels.toml."
)
layout_option = click.option(
    "--layout", type=click.Path(path_type=Path), help="CalD3r & MenD3s layout TOML."
)
source_files = stack(label_map_option, layout_option)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (nan passes every range comparison)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def render_range(name: str) -> click.ParamType:
    """The click type of the numeric render option `name`, from its range in RANGES."""
    _, kind, low, high, _ = RANGES[name]
    if kind is int:
        return click.IntRange(low, high)
    return FiniteFloatRange(low, high)


def render_options(function):
    """--size ... --landmark-allowance, handed to the command as one `render` RenderOptions."""

    @functools.wraps(function)
    def command(*args, size, margin, backend, fit_rotation, min_iou, landmark_allowance, **kw):
        render = RenderOptions(size, margin, backend, fit_rotation, min_iou, landmark_allowance)
        return function(*args, render=render, **kw)

    return stack(
        click.option(
            "--size",
            type=render_range("size"),
            default=DEFAULTS.size,
            show_default=True,
            help="Crop side (px).",
        ),
        click.option(
            "--margin",
            type=render_range("margin"),
            default=DEFAULTS.margin,
            show_default=True,
            help="Crop margin around the face, as a fraction of its longer side.",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default=DEFAULTS.backend,
            show_default=True,
            help="open3d needs no OpenGL.",
        ),
        click.option(
            "--fit-rotation",
            is_flag=True,
            help="BU-3DFE: also fit a small in-plane rotation of the F2D camera.",
        ),
        click.option(
            "--min-iou",
            type=render_range("min_iou"),
            default=DEFAULTS.min_iou,
            show_default=True,
            help="BU-3DFE: silhouette IoU below this marks a sample low-quality.",
        ),
        click.option(
            "--landmark-allowance",
            type=render_range("landmark_allowance_px"),
            default=DEFAULTS.landmark_allowance_px,
            show_default=True,
            help="Bosphorus: annotation error (px) allowed beyond the grid lattice's snap radius "
            "when a .lm2 point is compared with its .lm3 vertex.",
        ),
    )(command)


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes rendering at once, this one included (at most the CPUs available, and "
    "what memory allows).",
)
allow_failures_option = click.option(
    "--allow-failures", is_flag=True, help="Accept samples that failed to render: left out, listed."
)

dataset_file = click.option(
    "--dataset",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="The merged .h5 file.",
)
preset_option = click.option(
    "--preset", type=click.Choice(list(PRESETS)), help="Training preset [default: paper]."
)
epochs_option = click.option("--epochs", type=int, help="Override the number of epochs.")
epoch_selection_option = click.option(
    "--epoch-selection",
    type=click.Choice(SELECTIONS),
    help="Which epoch's predictions each fold reports: last, or best-test (the epoch of best "
    "test accuracy, as the paper's code reports: optimistic, since the test fold chooses it, "
    "and labelled so). Recorded per protocol in run.json; an experiment may set it per "
    "protocol [default: the experiment's, else last]. Every fold records both, so a resumed "
    "run may change it, and its report then uses the new choice.",
)


def training_options(function):
    """--device ... --exclude-flagged and the speed levers (--compile, --fused-adamw,
    --channels-last/--contiguous), handed to the command as one `environment`
    (TrainingEnvironment): built here once, carried whole to every job. The levers needing CUDA
    are refused here with --device cpu, and with "auto" where it resolves to the CPU
    (train.device.resolve)."""

    @functools.wraps(function)
    def command(
        *args,
        device,
        compile_mode,
        fused_adamw,
        channels_last,
        backbone_weights,
        trust_pickle,
        allow_architecture_mismatch,
        exclude_flagged,
        **kw,
    ):
        speed = Speed(compile=compile_mode, fused_adamw=fused_adamw, channels_last=channels_last)
        if device == "cpu" and speed.refusal(device):  # known now; "auto" is known where it runs
            raise click.UsageError(speed.refusal(device))
        environment = TrainingEnvironment(
            weights=PretrainedWeights(backbone_weights, trust_pickle, allow_architecture_mismatch),
            placement=Placement(device=device, speed=speed),
            exclude_flagged=exclude_flagged,
        )
        return function(*args, environment=environment, **kw)

    return stack(
        click.option("--device", type=click.Choice(DEVICES), default=DEVICES[0], show_default=True),
        click.option(
            "--compile",
            "compile_mode",
            type=click.Choice(COMPILE_MODES),
            default=COMPILE_MODES[0],
            show_default=True,
            help="torch.compile the model: on, or cuda-graphs (mode reduce-overhead, CUDA only). "
            "Speed only: recorded, no part of a fold's identity (benchmarks/gpu_bench.py).",
        ),
        click.option(
            "--fused-adamw",
            is_flag=True,
            help="AdamW as one fused CUDA kernel (CUDA only). Speed only, like --compile.",
        ),
        click.option(
            "--channels-last/--contiguous",
            default=None,
            help="Memory layout of images and weights [default: channels-last on CUDA, "
            "contiguous on the CPU]. Speed only, like --compile.",
        ),
        click.option(
            "--backbone-weights",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="Local backbone weights: a safetensors file from `weights import`, a timm state "
            "dict, or (with --trust-pickle) a whole-model pickle.",
        ),
        click.option("--trust-pickle", is_flag=True, help="Allow loading a whole-model pickle."),
        click.option(
            "--allow-architecture-mismatch",
            is_flag=True,
            help="Load a known weights file into a backbone other than the one it was made for "
            "(refused by default); recorded, and the report calls the run pretrained differently "
            "from the paper.",
        ),
        click.option("--exclude-flagged", is_flag=True, help=EXCLUDE_FLAGGED_HELP),
    )(command)


def ablation_option(multiple: bool):
    help_text = "Also run this ablation of the reference model (repeatable)."
    return click.option(
        "--ablation",
        "ablations" if multiple else "ablation",
        multiple=multiple,
        type=click.Choice(list(ABLATIONS)),
        help=help_text if multiple else "Train this ablation of the reference model instead.",
    )
