"""Benchmark protocols -> versioned, verifiable split manifests (sample ids and hashes only).

- `protocol`: the protocol files (`protocols/<name>.toml`);
- `deal`: which subjects a protocol uses and the fold each subject (or, by sample, each sample)
  goes to (the algorithm, written so that anyone can reimplement it);
- `manifest`: the typed manifest, its reading, writing and invariants, a fold's samples;
- `verify`: a manifest against the items a dataset holds.

Nothing here reads a dataset: the items come from the caller (`fer3d_bench.manifests` adapts
merged files and dataset trees), so splits can be made and checked without torch or HDF5.
"""

from fer3d_bench.splits.deal import ALGORITHM, Item, assign, make_manifest, rank_key, select, uses
from fer3d_bench.splits.manifest import (
    MANIFESTS_DIR,
    Entry,
    Manifest,
    ManifestError,
    content_hash,
    fold_name,
    manifest_path,
    read_manifest,
    write_manifest,
)
from fer3d_bench.splits.protocol import PROTOCOLS_DIR, Protocol, load_protocol
from fer3d_bench.splits.verify import Verification, verify

__all__ = [
    "ALGORITHM",
    "MANIFESTS_DIR",
    "PROTOCOLS_DIR",
    "Entry",
    "Item",
    "Manifest",
    "ManifestError",
    "Protocol",
    "Verification",
    "assign",
    "content_hash",
    "fold_name",
    "load_protocol",
    "make_manifest",
    "manifest_path",
    "rank_key",
    "read_manifest",
    "select",
    "uses",
    "verify",
    "write_manifest",
]
