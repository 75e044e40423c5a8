"""BU-3DFE (Yin et al. 2006): `<root>/<subject>/<subject>_<EX><II><RR>_<kind>.<ext>`."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import Landmarks, VrmlMesh, read_bnd, read_rgb, read_vrml
from fer3d_bench.sources.base import Found, SampleRecord, ScanResult, Skipped, Source


@dataclass(frozen=True)
class Bu3dfeScan:
    """One BU-3DFE scan's raw data: the cropped mesh, its texture, landmarks and the F2D photo."""

    mesh: VrmlMesh
    photo: np.ndarray  # (H, W, 3) uint8, the frontal 2D image
    texture: np.ndarray | None
    landmarks: Landmarks | None  # 83 points with vertex indices


class BU3DFE(Source):
    name = "bu3dfe"
    roles = ("mesh", "texture", "landmarks", "photo")
    required = ("mesh", "photo")
    subjects = tuple(f"F{i:04d}" for i in range(1, 57)) + tuple(f"M{i:04d}" for i in range(1, 45))
    intensities = (1, 2, 3, 4)
    sample_ids = {"bu3dfe": re.compile(r"(?P<subject>[FM]\d{4})_[A-Z]{2}\d{2}")}  # F0001_AN04
    kinds = {
        ("F3D", "wrl"): "mesh",
        ("F3D", "bmp"): "texture",
        ("F3D", "bnd"): "landmarks",
        ("F2D", "bmp"): "photo",
    }
    unused_kinds = {("RAW", "wrl"), ("RAW", "pse")}
    pattern = re.compile(
        r"^(?P<subject>[FM]\d{4})_(?P<ex>[A-Z]{2})(?P<level>\d{2})(?P<race>[A-Z]{2})_"
        r"(?P<kind>[A-Z0-9]+)\.(?P<ext>[A-Za-z]+)$"
    )

    def _index(self) -> ScanResult:
        result = ScanResult(self.name, self.root)
        files: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        found: dict[str, Found] = {}
        table = self.label_map.codes.get(self.name, {})
        for path in self.files(result):
            m = self.pattern.match(path.name)
            if m is None:
                expected = "<subject>_<EX><II><RR>_<kind>.<ext>, e.g. F0001_AN01WH_F3D.wrl"
                result.skipped.append(Skipped(path, f"name fits no BU-3DFE pattern ({expected})"))
                continue
            kind = (m["kind"], m["ext"].lower())
            if kind in self.unused_kinds:
                result.ignored[f"{kind[0]}.{kind[1]}"] += 1
                continue
            problem = self._problem(path, m, table)
            if problem:
                result.skipped.append(Skipped(path, problem))
                continue
            code = f"{m['ex']}{m['level']}"
            sample_id = f"{self.name}:{m['subject']}_{code}"
            files[sample_id][self.kinds[kind]].append(path)
            found[sample_id] = Found(
                dataset=self.name,
                subject=m["subject"],
                code=code,
                decision=self.label_map.decide(self.name, m["ex"]),
                intensity=int(m["level"]),
                sex=m["subject"][0],
            )

        self._group(result, files, found)
        return result

    def _problem(self, path: Path, m: re.Match, table: dict) -> str | None:
        """Why a file whose name parses still cannot be used, or None."""
        kind = (m["kind"], m["ext"].lower())
        if kind not in self.kinds:
            return f"unknown BU-3DFE file kind {m['kind']}.{m['ext']}"
        if path.parent.name != m["subject"]:
            return f"file names subject {m['subject']} but lies in folder {path.parent.name!r}"
        if m["ex"] not in table:
            return f"unknown expression code {m['ex']!r} (known: {', '.join(sorted(table))})"
        level = int(m["level"])
        neutral = table[m["ex"]] == "neutral"
        if (neutral and level != 0) or (not neutral and level not in self.intensities):
            allowed = "00" if neutral else "01-04"
            return f"intensity {m['level']} is not valid for {m['ex']} (expected {allowed})"
        return None

    def load(self, sample: SampleRecord) -> Bu3dfeScan:
        mesh = read_vrml(sample.files["mesh"])
        photo = read_rgb(sample.files["photo"])
        texture = read_rgb(sample.files["texture"]) if "texture" in sample.files else None
        landmarks = None
        if "landmarks" in sample.files:
            landmarks = read_bnd(sample.files["landmarks"])
            top = int(landmarks.indices.max())
            if top >= len(mesh.vertices):
                raise FormatError(
                    sample.files["landmarks"],
                    f"landmark vertex index {top} is out of range for a mesh of "
                    f"{len(mesh.vertices)} vertices",
                )
        return Bu3dfeScan(mesh=mesh, photo=photo, texture=texture, landmarks=landmarks)
