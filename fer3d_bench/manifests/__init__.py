"""Manifests meet datasets: the items a dataset holds, and a protocol's manifest found and
checked against them (the one owner of that rule)."""

from fer3d_bench.manifests.checked import CheckedManifest
from fer3d_bench.manifests.items import bu3dfe_catalogue, items_from_h5, items_from_root, items_of

__all__ = ["CheckedManifest", "bu3dfe_catalogue", "items_from_h5", "items_from_root", "items_of"]
