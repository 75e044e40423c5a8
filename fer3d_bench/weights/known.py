"""The known weight files as data (known.toml), and the hashes that identify a file.

A file is recognised by its git blob SHA-1, the id the upstream repository's tree gives it, so
anyone can check a copy with `git hash-object`; the sha256 is reported beside it for records.
Light on purpose (no torch): `weights --help` and planning code may read the table.

A safetensors file made by `weights import` names the known file it came from in its metadata,
which anyone can write. The import also records `tensors_sha256`, a hash of the tensors
themselves (`tensors_sha256()`); the claim counts as verified only where the tensors still hash
to it. Otherwise it is reported as claimed, not verified, and a run records the file as unknown,
never as the paper's weights. (The hash proves that the tensors are the ones the import wrote;
a forger who recomputes it could still pass, which a hash of each known file's tensors in
known.toml would close, once someone holding the upstream files adds them.)
"""

from __future__ import annotations

import hashlib
import json
import struct
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from safetensors import SafetensorError, safe_open

from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.limits import MAX_SAFETENSORS_HEADER, checked_file

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


# the training presets by the backbone each builds (train.config.PRESETS, which the weights
# room may not import; tests/weights/test_fitting_presets.py keeps the two equal): named in
# messages, so that a file that does not fit one preset says which one it does fit
PRESET_BACKBONES = {
    "paper": "tf_efficientnet_b2",
    "cpu-small": "efficientnet_b0",
    "tiny": "test_efficientnet",
}


def known_weights() -> dict[str, KnownWeights]:
    """git blob SHA-1 -> the known file it identifies."""
    table = tomllib.loads(resources.files(__package__).joinpath("known.toml").read_text())
    return {row["git_blob_sha1"]: KnownWeights(**row) for row in table["weights"]}


def by_name(name: str) -> KnownWeights | None:
    return next((k for k in known_weights().values() if k.name == name), None)


def file_hashes(path: Path) -> FileHashes:
    """Both hashes in one read; the git blob id hashes `blob SIZE\\0` before the bytes."""
    size = checked_file(path).stat().st_size
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
    with open(checked_file(path), "rb") as stream:
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


def tensors_sha256(path: Path) -> str:
    """The sha256 of a safetensors file's tensors, independent of its metadata and layout."""
    path = checked_file(path)
    with open(path, "rb") as stream:
        return tensors_digest(stream, path.stat().st_size, path)


def tensors_digest(stream: BinaryIO, size: int, where: Path) -> str:
    """sha256 over the tensors in name order: for each, one JSON line `[name, dtype, shape,
    bytes]` and then its bytes (read from the header's offsets, in bounded chunks)."""
    header, start = _safetensors_header(stream, size, where)
    digest = hashlib.sha256()
    for name in sorted(k for k in header if k != "__metadata__"):
        dtype, shape, (begin, end) = _tensor_entry(header[name], size - start, where)
        line = json.dumps([name, dtype, shape, end - begin], separators=(",", ":"))
        digest.update(line.encode() + b"\n")
        stream.seek(start + begin)
        left = end - begin
        while left:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                raise WeightsError(where, "damaged safetensors file (truncated tensor data)")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _safetensors_header(stream: BinaryIO, size: int, where: Path) -> tuple[dict, int]:
    """(header, where the tensor data starts), the header's size bounded before it is read."""
    stream.seek(0)
    head = stream.read(8)
    length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
    if not 0 < length <= min(MAX_SAFETENSORS_HEADER, size - 8):
        raise WeightsError(where, f"damaged safetensors file (header length {length})")
    try:
        header = json.loads(stream.read(length))
    except (ValueError, RecursionError) as err:  # RecursionError: nested without end
        raise WeightsError(where, f"damaged safetensors file (header: {err})") from None
    if not isinstance(header, dict):
        raise WeightsError(where, "damaged safetensors file (header is not an object)")
    return header, 8 + length


def _tensor_entry(entry: object, data_size: int, where: Path) -> tuple[str, list, list]:
    """(dtype, shape, [begin, end]) of one header entry, checked to lie within the data."""
    entry = entry if isinstance(entry, dict) else {}
    dtype, shape, span = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if (
        isinstance(dtype, str)
        and _counts(shape)
        and _counts(span)
        and len(span) == 2
        and span[0] <= span[1] <= data_size
    ):
        return dtype, shape, span
    raise WeightsError(where, "damaged safetensors file (a tensor entry is malformed)")


def _counts(value: object) -> bool:
    """A JSON list of whole numbers >= 0."""
    return isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    )


@dataclass(frozen=True)
class Identity:
    """Which known file a weights file is: `known` (or None), and whether that is `verified`.

    By hash for the files themselves. For a safetensors file, the metadata's claim, verified
    when its tensors hash to the `tensors_sha256` recorded at import; `why` says why not.
    """

    known: KnownWeights | None
    verified: bool
    why: str = ""


def identify(path: Path, hashes: FileHashes | None = None) -> Identity:
    """The known file `path` is, or claims to have been imported from (safetensors metadata);
    `hashes`, the file's if the caller has them already."""
    path = Path(path)
    if not is_safetensors(path):
        known = known_weights().get((hashes or file_hashes(path)).git_blob_sha1)
        return Identity(known, known is not None)
    metadata = safetensors_metadata(path)
    claimed = by_name(metadata.get("known", ""))
    if claimed is None:
        return Identity(None, False)
    recorded = metadata.get("tensors_sha256")
    if not recorded:
        why = "no tensor hash recorded at import; import the original file again"
    elif recorded != tensors_sha256(path):
        why = "its tensors differ from the hash recorded at import"
    else:
        return Identity(claimed, True)
    return Identity(claimed, False, why)


def refuse_other_architecture(path: Path, architecture: str, allow: bool = False) -> bool:
    """A known file goes only into the timm model it was trained as: the plain EfficientNet of
    the same size takes its tensors without complaint and computes different features. A claim
    not verified counts here too (a file that says it was made for another backbone is refused).

    With `allow` (`--allow-architecture-mismatch`) the mismatch is accepted; True is returned
    so that the caller records it.
    """
    return _mismatch(path, identify(path), architecture, allow)


def _mismatch(path: Path, identity: Identity, architecture: str, allow: bool) -> bool:
    """Whether the known file was made for another architecture; refused unless `allow`."""
    known = identity.known
    if not known or same_architecture(known.architecture, architecture):
        return False
    if allow:
        return True
    what = known.name if identity.verified else f"{known.name} (claimed, not verified)"
    raise WeightsError(
        path,
        f"is {what}, made for {known.architecture} at {known.input_size} px; "
        f"it does not fit the {architecture} backbone (choose a preset or configuration with "
        f"backbone {known.architecture}, or pass --allow-architecture-mismatch to train it "
        "anyway, recorded as pretrained differently from the paper)",
    )


def weights_record(
    path: Path | None, architecture: str, allow_mismatch: bool = False
) -> dict[str, object]:
    """What run.json and every result.json say of the pretrained weights.

    `{"pretrained": false}` without a file. Otherwise the file's name and sha256, the known
    file it is (or for a safetensors file, was imported from, verified by its tensors) or
    "unknown", how the paper uses that file (empty if it does not), the backbone it went into
    and whether that took --allow-architecture-mismatch. A claim its tensors do not verify is
    recorded as "unknown", with the claim and why under `claimed`.
    """
    if path is None:
        return {"pretrained": False}
    path = Path(path)
    hashes = file_hashes(path)  # one read of a file of tens of megabytes
    metadata = safetensors_metadata(path) if is_safetensors(path) else None
    identity = identify(path, hashes)
    mismatch = _mismatch(path, identity, architecture, allow_mismatch)
    known = identity.known if identity.verified else None
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
    if identity.known and not identity.verified:  # only then: verified records keep their bytes
        record["claimed"] = f"{identity.known.name}, not verified ({identity.why})"
    return record
