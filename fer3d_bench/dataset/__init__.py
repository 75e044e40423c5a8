"""The merged, versioned HDF5 dataset: schema, builder and reader (no torch here)."""

from fer3d_bench.dataset.reader import H5Dataset, Sample
from fer3d_bench.dataset.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "H5Dataset", "Sample"]
