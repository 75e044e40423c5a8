"""The quality bars of render-depth's default checks, and where each one comes from.

Kept free of imports so that the command line can show them as defaults without loading the
renderers.
"""

# BU-3DFE: the mesh's silhouette against the F2D photo's foreground. The one real pair measured
# matched with IoU 0.98 (docs/formats.md); the bar leaves room for hair or neck in the photo.
MIN_SILHOUETTE_IOU = 0.95

# CalD3r & MenD3s: RGB foreground against valid depth. Sensor depth has holes and the RGB crop a
# black background of its own, so only a gross mismatch (a swapped file) is a failure.
MIN_RGBD_IOU = 0.5

# Bosphorus: what annotators add, in image pixels, to the lattice snap when they click a 2D
# landmark. In the real scan measured every .lm2 point lay within the snap bound itself (4.2 px
# against 4.24 px); a couple of pixels is the usual clicking error at this resolution.
ANNOTATION_ALLOWANCE_PX = 2.0

# Bosphorus: a grid whose (u, v) positions depart from a regular lattice by more than half a
# pixel would put depth on the wrong pixels.
MAX_LATTICE_RESIDUAL_PX = 0.5
