"""Helpers shared by the dataset writers: per-scan seeding, byte-stable image files, and the
options each scan is written with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PNG_LEVEL = 1  # zlib level: a little larger than the default 6, but several times faster


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """An RNG keyed by name, so a scan's bytes never depend on listing order or worker count."""
    key = "\x1f".join(str(p) for p in (seed, *parts)).encode()
    digest = hashlib.sha256(key).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def write_text(path: Path, text: str) -> None:
    """ASCII with Unix line ends on every platform, so the bytes are the same everywhere."""
    path.write_text(text, encoding="ascii", newline="\n")


def save_rgb(path: Path, rgb: np.ndarray, fmt: str) -> None:
    """Write an (H, W, 3) uint8 image as 24-bit BMP or 8-bit RGB PNG, without metadata."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    options = {"compress_level": PNG_LEVEL} if fmt == "PNG" else {}
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format=fmt, **options)


def save_depth16(path: Path, depth: np.ndarray) -> None:
    """Write an (H, W) uint16 array as a 16-bit greyscale PNG (Pillow mode I;16)."""
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(
            f"{path}: expected an (H, W) uint16 array, got {depth.dtype} {depth.shape}"
        )
    image = Image.fromarray(np.ascontiguousarray(depth))
    if image.mode != "I;16":
        raise RuntimeError(f"Pillow made mode {image.mode} from uint16, expected I;16")
    image.save(path, format="PNG", compress_level=PNG_LEVEL)


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A plain float draw, so dataclass fields and JSON hold Python floats."""
    return float(rng.uniform(low, high))


@dataclass(frozen=True)
class Plant:
    """A misalignment planted in one scan on purpose, so alignment checks have something to find.

    `donors` are the scans whose file a swap may copy, in the order they are tried.
    """

    kind: str
    donors: tuple = ()


@dataclass(frozen=True)
class Options:
    """How one scan is written: `exact` keeps the regular sample of old (every file exactly on
    its own grid), otherwise the real files' irregularities are drawn; `plant` is None for all
    but the few scans misaligned on purpose."""

    exact: bool
    plant: Plant | None = None


def planted_scans(seed: int, dataset: str, eligible: list, count: int) -> list:
    """`count` of the `eligible` scans, drawn by an RNG named for the dataset's misalignments,
    so the choice depends on the configuration only."""
    if not eligible:
        return []
    rng = rng_for(seed, dataset, "misaligned")
    picks = rng.choice(len(eligible), min(count, len(eligible)), replace=False)
    return [eligible[int(i)] for i in picks]
