"""What a render-depth run is asked for; light to import, so the command line can show it."""

from __future__ import annotations

from dataclasses import dataclass

from fer3d_bench.render.bars import ANNOTATION_ALLOWANCE_PX, MIN_SILHOUETTE_IOU


@dataclass(frozen=True)
class RenderOptions:
    size: int = 260
    margin: float = 0.1
    backend: str = "pyrender"
    fit_rotation: bool = False
    min_iou: float = MIN_SILHOUETTE_IOU
    landmark_allowance_px: float = ANNOTATION_ALLOWANCE_PX
