"""Read any weight file the toolkit accepts, and write the safe form (`weights import`).

Three forms: a safetensors file (what `weights import` writes: tensors only, nothing to run), a
torch state dict (read with `weights_only=True`), and a whole-model pickle (read only through
legacy.py's stand-ins). Every file is checked against limits.py's bounds before it is read.
The safetensors metadata records which file the tensors came from, and a hash of the tensors
that verifies that claim later (known.identify). The same input always gives the same bytes.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import Tensor

from fer3d_bench import __version__
from fer3d_bench.io import atomic_path
from fer3d_bench.weights import known as table
from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.known import file_hashes, is_safetensors, tensors_digest
from fer3d_bench.weights.legacy import load_legacy, tensors_of
from fer3d_bench.weights.limits import check_torch_file, checked_file

HEAD_PREFIXES = ("classifier.", "fc.", "head.")  # timm's classifier names: not backbone weights


@dataclass
class WeightsFile:
    tensors: dict[str, Tensor]
    form: str  # "safetensors", "state dict" or "whole-model pickle"
    names: list[str]  # globals a pickle named (empty for the other forms)
    metadata: dict[str, str]  # safetensors metadata


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    path = checked_file(path)  # safetensors itself bounds the header and checks each offset
    try:
        with safe_open(str(path), framework="pt") as stream:
            keys = stream.keys()  # a safe_open handle is not iterable
            return {k: stream.get_tensor(k) for k in keys}, stream.metadata() or {}
    except Exception as err:  # safetensors raises its own and OS errors for damage
        raise WeightsError(path, f"damaged safetensors file ({err})") from err


def existing_file(path: Path) -> Path:
    """`path` as a Path, refused before anything is read unless it is a regular file within
    limits.MAX_FILE_BYTES (a FIFO would block the reader, a device never end)."""
    return checked_file(path)


def read_weights(path: Path) -> WeightsFile:
    """Tensors of any accepted form, never running code from the file."""
    path = existing_file(path)
    if is_safetensors(path):
        tensors, metadata = read_safetensors(path)
        return WeightsFile(tensors, "safetensors", [], metadata)
    check_torch_file(path)
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


def import_weights(path: Path, out: Path, force: bool = False) -> Imported:
    """Write the backbone tensors of `path` (any accepted form) to a safetensors file `out`,
    with metadata naming the source file, its hashes, if known which file it is, and the
    tensors' own hash. An existing `out` is refused unless `force`."""
    path, out = Path(path), Path(out)
    if not force and (out.exists() or out.is_symlink()):
        raise WeightsError(out, "already exists; pass --force to replace it")
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
    tensors = {k: v.contiguous() for k, v in backbone.items()}
    data, metadata = safetensors_bytes(tensors, metadata)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)  # an ordinary new file: its mode follows the umask (0644)
    return Imported(out, len(backbone), dropped, metadata)


def safetensors_bytes(
    tensors: dict[str, Tensor], metadata: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    """(a safetensors file whose bytes depend only on the tensors and the metadata, the
    metadata it holds: `metadata` and `tensors_sha256`).

    safetensors writes the metadata in hash-map order, which changes from run to run; so the
    tensors are laid out by safetensors without metadata, and the header is written again here
    with its keys sorted and the metadata added, `tensors_sha256` (known.tensors_digest) among
    it. The data offsets count from the end of the header, so they stay as they are.
    """
    laid_out = save(tensors)
    length = struct.unpack("<Q", laid_out[:8])[0]
    header = json.loads(laid_out[8 : 8 + length])
    digest = tensors_digest(io.BytesIO(laid_out), len(laid_out), Path("<import>"))
    header["__metadata__"] = metadata = metadata | {"tensors_sha256": digest}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned, as safetensors keeps it
    return struct.pack("<Q", len(text)) + text + laid_out[8 + length :], metadata
