"""Image decoding through Pillow, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fer3d_bench.errors import FormatError

_DEPTH16_MODES = ("I;16", "I;16L", "I;16B", "I")


def read_rgb(path: Path | str) -> np.ndarray:
    """An 8-bit RGB image as (H, W, 3) uint8; grey or palette images are expanded."""
    with _open(Path(path)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_depth16(path: Path | str) -> np.ndarray:
    """A single-channel 16-bit image (depth) as (H, W) uint16; 8-bit images are refused."""
    path = Path(path)
    with _open(path) as image:
        if image.mode not in _DEPTH16_MODES:
            raise FormatError(
                path, f"expected a 16-bit single-channel image, found mode {image.mode}"
            )
        array = np.asarray(image)
    if array.dtype != np.uint16:
        if array.min(initial=0) < 0 or array.max(initial=0) > 65535:
            raise FormatError(path, "depth values do not fit in 16 bits")
        array = array.astype(np.uint16)
    return array


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()  # decode now, so a truncated file fails here and names itself
    except FileNotFoundError:
        raise FormatError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FormatError(path, f"image does not decode ({exc})") from None
    return image
