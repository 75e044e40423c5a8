"""Fake BU-3DFE scans in the native tree: F3D.wrl, F3D.bmp, F3D.bnd, F2D.bmp (+ a few RAW).

One module per concern, so each can be read and changed alone: `scan` (which scans, and each
one's scene), `mesh` (the face mesh and its texture), `photo` (the F2D photo), `misalign` (the
planted misalignments) and `files` (what one scan writes).
"""

from fer3d_bench.synthetic.bu3dfe.files import write_scan
from fer3d_bench.synthetic.bu3dfe.misalign import irregularities, plan
from fer3d_bench.synthetic.bu3dfe.scan import DATASET, BuScan, scans

__all__ = ["DATASET", "BuScan", "irregularities", "plan", "scans", "write_scan"]
