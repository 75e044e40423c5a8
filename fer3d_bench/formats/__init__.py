"""Parsers of the datasets' native file formats; they know nothing about datasets or labels."""

from fer3d_bench.formats.bnt import BntGrid, read_bnt
from fer3d_bench.formats.images import read_depth16, read_rgb
from fer3d_bench.formats.landmarks import Landmarks, read_bnd, read_lm2, read_lm3
from fer3d_bench.formats.vrml import VrmlMesh, parse_vrml, read_vrml

__all__ = [
    "BntGrid",
    "Landmarks",
    "VrmlMesh",
    "parse_vrml",
    "read_bnd",
    "read_bnt",
    "read_depth16",
    "read_lm2",
    "read_lm3",
    "read_rgb",
    "read_vrml",
]
