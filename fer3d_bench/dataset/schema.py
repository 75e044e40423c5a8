"""The merged HDF5 file's layout, versioned like a tfds dataset.

Version rules: patch = same records; minor = same records plus fields or properties; major =
records may change. Every file stores its schema version, the class order and how it was built.

Layout (N samples, ordered by sample id; S = crop size):
  /rgb            (N, S, S, 3) uint8    one chunk per sample
  /depth          (N, S, S)    uint16   one chunk per sample, the render-depth convention
  /label          (N,) int8     index into the `classes` attribute
  /sample_id, /dataset, /subject, /code, /sex   (N,) fixed-length UTF-8 strings
  /intensity      (N,) int8     -1 where the dataset has none
  /iou            (N,) float32  alignment figure (NaN where the method has none)
  /status         (N,) UTF-8    "ok" or "low-quality": how the sample aligned against its bars
                                (since 1.1.0; a flagged sample is kept, never dropped)
  /flags          (N,) UTF-8    the checks a low-quality sample failed, ';'-separated, e.g.
                                "landmark-offset" (since 1.1.0; empty when ok)
  /alignment      (N,) UTF-8 JSON: the full alignment.csv row of render-depth
  /sources        (N,) UTF-8 JSON: {role: {"path": relative to the dataset root, "sha256": ...}}
Attributes: schema_version, fer3d_bench_version, classes, depth_convention (JSON),
build_parameters (JSON), counts (JSON), fingerprint.

Every dataset is chunked with HDF5's Fletcher-32 filter (since 1.2.0): each chunk carries a
checksum that HDF5 checks whenever the chunk is read, so a damaged sample fails on read instead
of reaching a model. The fingerprint covers what the checksums cannot (a 1.1.0 file has none, and
a file rewritten through HDF5 gets new ones). A 1.2.0 file (or later) missing a checksum on any
dataset is refused, and so is any file whose datasets are not plain datasets stored in it
(soft or external links, virtual datasets, external raw storage): see `dataset.reader`.
"""

from __future__ import annotations

import re

import numpy as np

# 1.1.0: /status and /flags. 1.2.0: the same records, each dataset's chunks checksummed.
SCHEMA_VERSION = "1.2.0"
QUALITY_SINCE = (1, 1, 0)  # /status and /flags
CHECKSUMS_SINCE = (1, 2, 0)  # Fletcher-32 on every dataset
PIXELS = ("rgb", "depth")
TEXT_FIELDS = (
    "sample_id",
    "dataset",
    "subject",
    "code",
    "sex",
    "status",
    "flags",
    "alignment",
    "sources",
)
JSON_FIELDS = ("alignment", "sources")  # one JSON object per sample
# the numeric columns and the dtype kinds they may have (the builder writes int8, int8, float32)
NUMBER_FIELDS = {"label": "iu", "intensity": "iu", "iou": "f"}


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a version like "1.2.0"; None for anything else."""
    match = re.fullmatch(r"([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})", text)
    return tuple(int(part) for part in match.groups()) if match else None


def required_fields(version: tuple[int, int, int]) -> tuple[str, ...]:
    """The datasets a file of `version` holds, pixels first."""
    quality = () if version < QUALITY_SINCE else ("status", "flags")
    text = tuple(name for name in TEXT_FIELDS if name not in ("status", "flags"))
    return (*PIXELS, *NUMBER_FIELDS, *text, *quality)


def add_to_fingerprint(
    digest, sample_id: str, label: int, rgb: np.ndarray, depth: np.ndarray
) -> None:
    """Feed one sample to the content fingerprint (a hashlib sha256), as the builder and
    `verify` both do: its id, a NUL, its label as one byte, then its pixels (RGB, then depth as
    little-endian uint16)."""
    digest.update(sample_id.encode() + b"\0" + int(label).to_bytes(1, "little", signed=True))
    digest.update(rgb.tobytes() + depth.astype("<u2").tobytes())
