"""The known weight files as data (known.toml), and the hashes that identify a file.

A file is recognised by its git blob SHA-1, the id the upstream repository's tree gives it, so
anyone can check a copy with `git hash-object`; the sha256 is reported beside it for records.
Light on purpose (no torch): `weights --help` and planning code may read the table.
"""

from __future__ import annotations

import hashlib
import struct
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safetensors import SafetensorError, safe_open

from fer3d_bench.weights.errors import WeightsError

UPSTREAM_REPOSITORY = "av-savchenko/face-emotion-recognition"


@dataclass(frozen=True)
class KnownWeights:
    name: str
    upstream: str  # path in UPSTREAM_REPOSITORY
    git_blob_sha1: str
    architecture: str  # the timm model it was trained as
    input_size: int
    trained_on: str
    format: str  # "state dict" or "whole-model pickle"
    paper: str = ""  # how the paper uses it ("named by the paper's text", ...), if it does


@dataclass(frozen=True)
class FileHashes:
    size: int
    git_blob_sha1: str
    sha256: str


def known_weights() -> dict[str, KnownWeights]:
    """git blob SHA-1 -> the known file it identifies."""
    table = tomllib.loads(resources.files(__package__).joinpath("known.toml").read_text())
    return {row["git_blob_sha1"]: KnownWeights(**row) for row in table["weights"]}


def by_name(name: str) -> KnownWeights | None:
    return next((k for k in known_weights().values() if k.name == name), None)


def file_hashes(path: Path) -> FileHashes:
    """Both hashes in one read; the git blob id hashes `blob SIZE\\0` before the bytes."""
    size = Path(path).stat().st_size
    blob, sha256 = hashlib.sha1(b"blob %d\0" % size), hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            blob.update(chunk)
            sha256.update(chunk)
    return FileHashes(size, blob.hexdigest(), sha256.hexdigest())


def same_architecture(a: str, b: str) -> bool:
    """timm names with a pretrained tag (`.ns_jft_in1k`) or the old `_ns` suffix are one model."""
    base = [name.split(".")[0].removesuffix("_ns") for name in (a, b)]
    return base[0] == base[1]


def is_safetensors(path: Path) -> bool:
    """An 8-byte little-endian header length, then a JSON object (the format's header)."""
    with open(path, "rb") as stream:
        head = stream.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return struct.unpack("<Q", head[:8])[0] < Path(path).stat().st_size


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The header's metadata, read by safetensors without torch (and without the tensors)."""
    try:
        with safe_open(str(path), framework="numpy") as stream:
            return dict(stream.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise WeightsError(path, f"damaged safetensors file ({err})") from err


def identify(path: Path) -> KnownWeights | None:
    """The known file `path` is, or was imported from (safetensors metadata), or None."""
    path = Path(path)
    if is_safetensors(path):
        return by_name(safetensors_metadata(path).get("known", ""))
    return known_weights().get(file_hashes(path).git_blob_sha1)


def refuse_other_architecture(path: Path, architecture: str, allow: bool = False) -> bool:
    """A known file goes only into the timm model it was trained as: the plain EfficientNet of
    the same size takes its tensors without complaint and computes different features.

    With `allow` (`--allow-architecture-mismatch`) the mismatch is accepted; True is returned
    so that the caller records it.
    """
    return _mismatch(path, identify(path), architecture, allow)


def _mismatch(path: Path, known: KnownWeights | None, architecture: str, allow: bool) -> bool:
    """Whether `known` was made for another architecture; refused unless `allow`."""
    if not known or same_architecture(known.architecture, architecture):
        return False
    if allow:
        return True
    raise WeightsError(
        path,
        f"is {known.name}, made for {known.architecture} at {known.input_size} px; "
        f"it does not fit the {architecture} backbone (choose a preset or configuration with "
        f"backbone {known.architecture}, or pass --allow-architecture-mismatch to train it "
        "anyway, recorded as pretrained differently from the paper)",
    )


def weights_record(
    path: Path | None, architecture: str, allow_mismatch: bool = False
) -> dict[str, object]:
    """What run.json and every result.json say of the pretrained weights.

    `{"pretrained": false}` without a file. Otherwise the file's name and sha256, the known
    file it is (or for a safetensors file, was imported from, as its metadata says) or
    "unknown", how the paper uses that file (empty if it does not), the backbone it went into
    and whether that took --allow-architecture-mismatch.
    """
    if path is None:
        return {"pretrained": False}
    path = Path(path)
    hashes = file_hashes(path)  # one read of a file of tens of megabytes
    metadata = safetensors_metadata(path) if is_safetensors(path) else None
    if metadata is None:
        known = known_weights().get(hashes.git_blob_sha1)
    else:
        known = by_name(metadata.get("known", ""))
    mismatch = _mismatch(path, known, architecture, allow_mismatch)
    record: dict[str, object] = {
        "pretrained": True,
        "file": path.name,
        "sha256": hashes.sha256,
        "known": known.name if known else "unknown",
        "trained_on": known.trained_on if known else "",
        "paper": known.paper if known else "",
        "backbone": architecture,
        "architecture_mismatch": mismatch,
    }
    if metadata and metadata.get("source_sha256"):
        record["imported_from_sha256"] = metadata["source_sha256"]
    return record
