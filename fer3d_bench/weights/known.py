"""The known weight files as data (known.toml), and the hashes that identify a file.

A file is recognised by its git blob SHA-1, the id the upstream repository's tree gives it, so
anyone can check a copy with `git hash-object`; the sha256 is reported beside it for records.
Light on purpose (no torch): `weights --help` and planning code may read the table.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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
