"""The cuda tests' data and settings.

The merged file is written directly from generated images (no rendering: a bare GPU machine
may have no OpenGL), with BU-3DFE's sample names for five subjects, so that the published
bu3dfe-full protocol deals folds of it for `evaluate`. Each image holds a bright patch whose
place its class decides, so the tiny model learns something and its predictions are not all
one class (a comparison of two runs' predictions could not fail otherwise).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import _Entry, write_h5
from fer3d_bench.manifests.items import bu3dfe_catalogue, items_from_h5
from fer3d_bench.sources import SampleRecord
from fer3d_bench.taxonomy import CLASSES

SUBJECTS = ("bu3dfe:F0001", "bu3dfe:F0002", "bu3dfe:F0003", "bu3dfe:M0001", "bu3dfe:M0002")
SIZE = 48  # stored; the tiny preset resizes to 64 on the way, as it does for the test worlds
PROTOCOL = "bu3dfe-full"


@dataclass(frozen=True)
class GpuData:
    h5: Path
    manifests: Path  # holds bu3dfe-full's manifest of the file


@pytest.fixture(scope="session")
def gpu_data(tmp_path_factory) -> GpuData:
    """125 samples (25 a subject, in BU-3DFE's names), 48 px, and their bu3dfe-full manifest."""
    folder = tmp_path_factory.mktemp("cuda-data")
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    items = [item for item in bu3dfe_catalogue() if item.subject in SUBJECTS]
    entries = [_entry(item, images, rng) for item in items]
    h5 = folder / "merged.h5"
    write_h5(h5, entries, {"synthetic": True}, {}, None, progress=False)
    manifest = sp.make_manifest(sp.load_protocol(PROTOCOL), items_from_h5(h5), "test")
    sp.write_manifest(manifest, folder / "m")
    return GpuData(h5, folder / "m")


def _entry(item, images: Path, rng: np.random.Generator) -> _Entry:
    """One sample's files: noise, and a bright 12 px patch in the cell of its class."""
    name = item.sample_id.split(":")[1]
    k = CLASSES.index(item.label)
    rgb = rng.integers(0, 128, (SIZE, SIZE, 3), np.uint8)
    row, col = divmod(k, 3)
    rgb[2 + 16 * row : 14 + 16 * row, 2 + 16 * col : 14 + 16 * col] = 255
    depth = rng.integers(20000, 40000, (SIZE, SIZE), np.uint16)
    rgb_path, depth_path = images / f"{name}_rgb.png", images / f"{name}_depth.png"
    Image.fromarray(rgb).save(rgb_path)
    Image.fromarray(depth).save(depth_path)
    code = name.split("_")[1][:2]
    record = SampleRecord(
        item.sample_id, "bu3dfe", item.subject, item.label, code, item.intensity, item.sex, {}
    )
    return _Entry(record, images, {"status": "ok"}, rgb_path, depth_path, {})


@pytest.fixture
def exact(monkeypatch):
    """cuDNN's deterministic kernels and no TF32, so that two runs on the GPU differ only where
    the code under test makes them differ (TF32 alone moves a tiny model's losses by 1e-3)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # matmuls in full fp32 (torch's default)
    yield
    torch.set_float32_matmul_precision(before)
