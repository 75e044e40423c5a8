"""Read any weight file the toolkit accepts, and write the safe form (`weights import`).

Three forms: a safetensors file (what `weights import` writes: tensors only, nothing to run), a
torch state dict (read with `weights_only=True`), and a whole-model pickle (read only through
legacy.py's stand-ins). The safetensors metadata records which file the tensors came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from fer3d_bench import __version__
from fer3d_bench.io import atomic_path
from fer3d_bench.weights import known as table
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.known import file_hashes, is_safetensors
from fer3d_bench.weights.legacy import load_legacy, tensors_of

HEAD_PREFIXES = ("classifier.", "fc.", "head.")  # timm's classifier names: not backbone weights


@dataclass
class WeightsFile:
    tensors: dict[str, Tensor]
    form: str  # "safetensors", "state dict" or "whole-model pickle"
    names: list[str]  # globals a pickle named (empty for the other forms)
    metadata: dict[str, str]  # safetensors metadata


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as stream:
            keys = stream.keys()  # a safe_open handle is not iterable
            return {k: stream.get_tensor(k) for k in keys}, stream.metadata() or {}
    except Exception as err:  # safetensors raises its own and OS errors for damage
        raise WeightsError(path, f"damaged safetensors file ({err})") from err


def existing_file(path: Path) -> Path:
    """`path` as a Path, refused before anything is read if there is no file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "weights file not found")
    return path


def read_weights(path: Path) -> WeightsFile:
    """Tensors of any accepted form, never running code from the file."""
    path = existing_file(path)
    if is_safetensors(path):
        tensors, metadata = read_safetensors(path)
        return WeightsFile(tensors, "safetensors", [], metadata)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not plain tensors and containers: read it with stand-ins instead
        legacy = load_legacy(path)
        return WeightsFile(tensors_of(legacy.root, path), "whole-model pickle", legacy.names, {})
    return WeightsFile(tensors_of(loaded, path), "state dict", [], {})


def split_head(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(backbone tensors, dropped classifier keys)."""
    head = [k for k in tensors if k.startswith(HEAD_PREFIXES)]
    return {k: v for k, v in tensors.items() if k not in head}, head


@dataclass
class Imported:
    out: Path
    keys: int
    dropped: list[str]
    metadata: dict[str, str]


def import_weights(path: Path, out: Path) -> Imported:
    """Write the backbone tensors of `path` (any accepted form) to a safetensors file `out`,
    with metadata naming the source file, its hashes and, if known, which file it is."""
    path, out = Path(path), Path(out)
    weights = read_weights(path)
    backbone, dropped = split_head(weights.tensors)
    if not backbone:
        raise WeightsError(path, f"no backbone tensors (only {sorted(dropped)[:5]})")
    hashes = file_hashes(path)
    known = table.known_weights().get(hashes.git_blob_sha1)
    metadata = {
        "source_file": path.name,
        "source_sha256": hashes.sha256,
        "source_git_blob_sha1": hashes.git_blob_sha1,
        "known": known.name if known else "unknown",
        "fer3d_bench_version": __version__,
        "dropped_keys": json.dumps(dropped),
    }
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in backbone.items()}, str(tmp), metadata=metadata)
    return Imported(out, len(backbone), dropped, metadata)
