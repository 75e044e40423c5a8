"""Bosphorus (Savran et al. 2008): `<root>/<subject>/<subject>_<kind>_<code>_<n>.<ext>`."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import BntGrid, Landmarks, read_bnt, read_lm2, read_lm3, read_rgb
from fer3d_bench.sources.base import Found, SampleRecord, ScanResult, Skipped, Source


@dataclass(frozen=True)
class BosphorusScan:
    """One Bosphorus scan: the range grid, the 2D image and its landmarks."""

    grid: BntGrid
    image: np.ndarray  # (H, W, 3) uint8
    lm2: Landmarks | None
    lm3: Landmarks | None


class Bosphorus(Source):
    name = "bosphorus"
    sample_ids = {  # bs000_LFAU_12_0
        "bosphorus": re.compile(r"(?P<subject>bs\d{3})_[A-Z]+_[A-Za-z0-9]+_\d+")
    }
    roles = ("grid", "image", "lm2", "lm3")
    required = ("grid", "image")
    extensions = {"bnt": "grid", "png": "image", "lm2": "lm2", "lm3": "lm3"}
    pattern = re.compile(
        r"^(?P<subject>bs\d{3})_(?P<kind>[A-Z]+)_(?P<code>[A-Za-z0-9]+)_(?P<n>\d+)\.(?P<ext>\w+)$"
    )

    def _index(self) -> ScanResult:
        result = ScanResult(self.name, self.root)
        files: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        found: dict[str, Found] = {}
        for path in self.files(result):
            m = self.pattern.match(path.name)
            if m is None:
                expected = "<subject>_<kind>_<code>_<n>.<ext>, e.g. bs000_N_N_0.bnt"
                result.skipped.append(Skipped(path, f"name fits no Bosphorus pattern ({expected})"))
                continue
            role = self.extensions.get(m["ext"].lower())
            if role is None:
                known = ", ".join(f".{e}" for e in self.extensions)
                result.skipped.append(Skipped(path, f"unknown extension (expected {known})"))
                continue
            if path.parent.name != m["subject"]:
                reason = (
                    f"file names subject {m['subject']} but lies in folder {path.parent.name!r}"
                )
                result.skipped.append(Skipped(path, reason))
                continue
            sample_id = f"{self.name}:{path.name[: -len(m['ext']) - 1]}"
            files[sample_id][role].append(path)
            code = f"{m['kind']}_{m['code']}"
            found[sample_id] = Found(
                self.name, m["subject"], code, self.label_map.decide(self.name, code)
            )

        self._group(result, files, found)
        return result

    def load(self, sample: SampleRecord) -> BosphorusScan:
        grid = read_bnt(sample.files["grid"])
        image_path = sample.files["image"]
        if Path(grid.image_name).stem != image_path.stem:
            raise FormatError(
                sample.files["grid"],
                f"the grid names image {grid.image_name!r}, but its scan's image is "
                f"{image_path.name!r} (mislabelled file?)",
            )
        image = read_rgb(image_path)
        lm2 = read_lm2(sample.files["lm2"]) if "lm2" in sample.files else None
        lm3 = read_lm3(sample.files["lm3"]) if "lm3" in sample.files else None
        return BosphorusScan(grid=grid, image=image, lm2=lm2, lm3=lm3)
