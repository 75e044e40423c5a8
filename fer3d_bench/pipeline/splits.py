"""Protocols -> manifests: the items a protocol is dealt from, and the manifests written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer3d_bench import splits as sp
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import ConfigError
from fer3d_bench.manifests import bu3dfe_catalogue, items_from_root, items_of
from fer3d_bench.sources import BU3DFE, Bosphorus, CalD3rMenD3s

# protocol dataset names (as in the merged file) -> the source that reads their tree
_TREES = {"bu3dfe": BU3DFE.name, "bosphorus": Bosphorus.name, "cald3r": CalD3rMenD3s.name}
_TREES["mend3s"] = CalD3rMenD3s.name


@dataclass
class Items:
    items: list[sp.Item]
    source: str  # how they were listed, recorded in the manifest


def protocol_items(protocol: sp.Protocol, dataset: Path | None, naming_scheme: bool) -> Items:
    """The samples to deal `protocol` from: a merged .h5, a dataset tree, or the naming scheme."""
    if naming_scheme:
        if set(protocol.datasets) != {"bu3dfe"}:
            raise ConfigError("--naming-scheme lists BU-3DFE only")
        return Items(bu3dfe_catalogue(), "BU-3DFE naming scheme (100 subjects x 25 scans)")
    if dataset is None:
        raise ConfigError("give --dataset merged.h5|ROOT (or --naming-scheme for BU-3DFE)")
    if Path(dataset).is_file():
        return h5_items(Path(dataset))
    unknown = sorted(set(protocol.datasets) - set(_TREES))
    if unknown:
        known = ", ".join(sorted(_TREES))
        raise ConfigError(f"{protocol.name}: no tree reader for {', '.join(unknown)} ({known})")
    trees = {_TREES[name] for name in protocol.datasets}
    if len(trees) > 1:
        raise ConfigError(f"{protocol.name} spans several datasets: give a merged .h5 file")
    source = trees.pop()
    return Items(items_from_root(dataset, source), f"scan of a {source} tree")


def h5_items(path: Path) -> Items:
    with H5Dataset(path) as data:
        return Items(items_of(data), f"merged HDF5 with fingerprint {data.fingerprint}")


def generate_manifest(protocol: sp.Protocol, items: Items, out: Path) -> tuple[sp.Manifest, Path]:
    """Write `<out>/<protocol>/<version>.json` (+ .csv, SHA256SUMS); the manifest and its path."""
    manifest = sp.make_manifest(protocol, items.items, items.source)
    written = sp.write_manifest(manifest, out)
    return manifest, written[0]


def verify_manifest(manifest_path: Path, dataset: Path) -> tuple[sp.Manifest, sp.Verification]:
    """A manifest and what `splits verify` says of `dataset` (a merged .h5 or a tree) against it."""
    manifest = sp.read_manifest(manifest_path)
    protocol = sp.load_protocol(manifest.protocol_name)
    items = protocol_items(protocol, dataset, naming_scheme=False)
    return manifest, sp.verify(manifest, protocol, items.items)
