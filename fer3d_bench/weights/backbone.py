"""Load a local weights file into a model's timm feature backbones (timm's way: the loader, not
each model, reads the file).

Nothing is downloaded. A safetensors file (what `weights import` writes) or a state dict holds
only tensors; a whole-model pickle (the HSEmotion emotion models) runs code when read, so it is
only accepted with `trust_pickle`, and read by torch itself (`weights import` is the safe way,
through legacy.py's stand-ins). A known file (by hash, or the safetensors made from one) is
refused for a backbone it was not trained as, unless `allow_architecture_mismatch` (then it is
warned about, and recorded by the caller).
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.files import existing_file, read_safetensors
from fer3d_bench.weights.inspect import CANDIDATES, backbone_shapes
from fer3d_bench.weights.known import (
    PRESET_BACKBONES,
    is_safetensors,
    refuse_other_architecture,
    same_architecture,
)
from fer3d_bench.weights.limits import check_torch_file
from fer3d_bench.weights.request import PretrainedWeights


@dataclass
class LoadReport:
    """What loading left out; written as weights_report.json (`asdict`) into the fold folder."""

    missing: list[str]  # backbone keys the file did not provide
    unexpected: list[str]  # file keys not loaded (the classification head, by design)
    source: str  # "safetensors", "state_dict" or "pickle"


def load_backbone_weights(
    backbones: Sequence[nn.Module], architecture: str, request: PretrainedWeights
) -> LoadReport:
    """Load `request.path` into every backbone (depth too, as in the paper), strict=False.

    `backbones` are timm feature models of the timm model `architecture`, all alike: the file's
    keys are matched against the first one's, and the same tensors go into each. Every file
    that cannot be used raises WeightsError naming it.
    """
    if request.path is None:
        raise ValueError("no weights file requested (PretrainedWeights.path is None)")
    if not backbones:
        raise ValueError("no backbone to load weights into")
    path = existing_file(request.path)
    # checked before anything is read: a trusted pickle would run on reading
    if refuse_other_architecture(path, architecture, request.allow_architecture_mismatch):
        warnings.warn(
            f"{path}: loaded into {architecture}, not the architecture it was made for "
            "(--allow-architecture-mismatch); its features will differ from the original's",
            stacklevel=2,
        )
    if is_safetensors(path):
        state, source = read_safetensors(path)[0], "safetensors"
    else:
        state, source = read_state_dict(path, request.trust_pickle)
    target = backbones[0].state_dict()
    mapped, unexpected = map_backbone_keys(state, target)
    if not mapped:
        raise WeightsError(
            path,
            f"no key matches the {architecture} backbone "
            f"(first keys in the file: {sorted(state)[:5]})",
        )
    refuse_shape_mismatch(path, mapped, target, architecture)
    missing: list[str] = []
    for backbone in backbones:
        missing = backbone.load_state_dict(mapped, strict=False).missing_keys
    return LoadReport(missing=sorted(missing), unexpected=sorted(unexpected), source=source)


def read_state_dict(path: Path, trust_pickle: bool) -> tuple[dict[str, Tensor], str]:
    """(state dict, "state_dict" | "pickle") of a torch file: the safe loader first, the
    pickle only if trusted (warned about); the file is checked against limits.py's bounds
    before either reads it."""
    path = existing_file(path)
    check_torch_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not safe"
        safe_error = err
    else:
        return state_dict_of(path, loaded), "state_dict"
    if not trust_pickle:
        if zipfile.is_zipfile(path):
            raise WeightsError(
                path,
                "holds pickled objects (a whole saved model?), which run arbitrary code "
                "when loaded; convert it without running anything with `fer3d-bench weights "
                f"import {path} --out backbone.safetensors`, or pass --trust-pickle if you trust "
                "where this file came from",
            ) from safe_error
        raise WeightsError(
            path,
            f"not a torch weights file ({safe_error}); a legacy whole-model pickle "
            "needs `fer3d-bench weights import` (safe) or --trust-pickle",
        ) from safe_error
    warnings.warn(
        f"{path}: loading a pickle, which can run arbitrary code; only do this for trusted files",
        stacklevel=3,  # the caller of load_backbone_weights
    )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise WeightsError(
            path,
            f"not a torch file ({err}); a whole model saved by another timm version "
            "loads with `fer3d-bench weights import`",
        ) from err
    return state_dict_of(path, loaded), "pickle"


def state_dict_of(path: Path, loaded: object) -> dict[str, Tensor]:
    """Tensors by key from a module, a state dict, or a training checkpoint that wraps one."""
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping):
        for wrapper in ("state_dict", "model", "state_dict_ema"):
            if isinstance(loaded.get(wrapper), Mapping):
                loaded = loaded[wrapper]
                break
        tensors = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, Tensor)}
        if tensors:
            return {k.removeprefix("module."): v for k, v in tensors.items()}
    raise WeightsError(path, f"holds a {type(loaded).__name__}, not model weights")


def map_backbone_keys(
    state: Mapping[str, Tensor], target: Mapping[str, Tensor]
) -> tuple[dict[str, Tensor], list[str]]:
    """(weights under backbone keys, file keys left out).

    timm's EfficientNet/MobileNet feature models keep the classifier's names (`conv_stem`, `bn1`,
    `blocks.*`); generic FeatureListNet wrappers flatten the first level (`stages.0` ->
    `stages_0`). Head keys (`conv_head`, `bn2`, `classifier`, ...) match nothing and are reported.
    """
    mapped: dict[str, Tensor] = {}
    left_out: list[str] = []
    for key, value in state.items():
        name = next((k for k in (key, key.replace(".", "_", 1)) if k in target), None)
        if name is None:
            left_out.append(key)
        else:
            mapped[name] = value
    return mapped, left_out


def refuse_shape_mismatch(
    path: Path, mapped: Mapping[str, Tensor], target: Mapping[str, Tensor], backbone: str
) -> None:
    """WeightsError if any matched tensor has another shape than the backbone's."""
    wrong = [k for k, v in mapped.items() if v.shape != target[k].shape]
    if wrong:
        problem = (
            f"weights do not fit the {backbone} backbone; {len(wrong)} tensors differ "
            f"in shape, e.g. {wrong[0]}: {tuple(mapped[wrong[0]].shape)} in the file, "
            f"{tuple(target[wrong[0]].shape)} expected"
        )
        fits = fitting_architectures(mapped)
        python, cli = _presets_taking(fits)
        raise WeightsError(path, problem + python, problem + cli)


def fitting_architectures(mapped: Mapping[str, Tensor]) -> list[str]:
    """The architectures (inspect's candidates and the presets' backbones) whose backbone holds
    every tensor of `mapped` under its name and in its shape: what the file was made as."""
    names = dict.fromkeys([*CANDIDATES, *PRESET_BACKBONES.values()])
    fits = []
    for name in names:
        shapes = backbone_shapes(name)
        if all(shapes.get(k) == tuple(v.shape) for k, v in mapped.items()):
            fits.append(name)
    return fits


def _presets_taking(fits: list[str]) -> tuple[str, str]:
    """'; the file fits ...: preset ...', said in Python and on the command line ('' if none)."""
    if not fits:
        return (f"; it fits none of {', '.join(dict.fromkeys([*CANDIDATES]))}",) * 2
    presets = [
        (preset, arch)
        for preset, arch in PRESET_BACKBONES.items()
        if any(same_architecture(arch, fit) for fit in fits)
    ]
    said = f"; its tensors fit {', '.join(fits)}"
    if not presets:
        return (f"{said} (no preset builds that backbone)",) * 2
    python = " or ".join(f"preset='{p}' ({arch})" for p, arch in presets)
    cli = " or ".join(f"--preset {p} ({arch})" for p, arch in presets)
    return f"{said}: train it with {python}", f"{said}: train it with {cli}"
