"""CalD3r & MenD3s (Ulrich et al. 2024): aligned RGB and 16-bit depth crops, layout from config."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fer3d_bench.errors import ConfigError, FormatError
from fer3d_bench.formats import read_depth16, read_rgb
from fer3d_bench.sources.base import Found, SampleRecord, ScanResult, Skipped, Source
from fer3d_bench.taxonomy import CLASSES, LabelMap

_GROUPS = ("sex", "subject", "code", "label")
_ID = re.compile(r"[^_]+_(?P<subject>[^_]+)_[^_]+_[^_]+")  # <sex>_<subject>_<code>_<label>


@dataclass(frozen=True)
class Layout:
    """Where a CalD3r & MenD3s copy keeps its files (see cald3r_mend3s.toml)."""

    datasets: dict[str, str]
    class_folders: dict[str, str]
    rgb_folder: str
    depth_folder: str
    rgb_pattern: re.Pattern
    depth_pattern: re.Pattern
    depth_unit_mm: float


def load_layout(path: Path | None = None) -> Layout:
    """The default layout, or a user's TOML file of the same shape."""
    where = path or "cald3r_mend3s.toml (default)"
    try:
        text = (
            Path(path).read_text()
            if path
            else resources.files("fer3d_bench.sources").joinpath("cald3r_mend3s.toml").read_text()
        )
        data = tomllib.loads(text)
        layout = Layout(
            datasets=dict(data["datasets"]),
            class_folders=dict(data["class_folders"]),
            rgb_folder=str(data["rgb_folder"]),
            depth_folder=str(data["depth_folder"]),
            rgb_pattern=re.compile(data["rgb_pattern"]),
            depth_pattern=re.compile(data["depth_pattern"]),
            depth_unit_mm=float(data["depth_unit_mm"]),
        )
    except FileNotFoundError:
        raise ConfigError(f"{where}: layout file not found") from None
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, re.error) as exc:
        raise ConfigError(f"{where}: invalid layout ({type(exc).__name__}: {exc})") from None
    for pattern in (layout.rgb_pattern, layout.depth_pattern):
        missing = [g for g in _GROUPS if g not in pattern.groupindex]
        if missing:
            raise ConfigError(f"{where}: pattern {pattern.pattern!r} lacks groups {missing}")
    bad = {f: c for f, c in layout.class_folders.items() if c not in CLASSES}
    if bad:
        raise ConfigError(f"{where}: class folders map to unknown classes {bad}")
    return layout


@dataclass(frozen=True)
class RgbdPair:
    """An aligned RGB crop and its depth map in the dataset's raw depth unit."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) uint16, 0 = no depth
    depth_unit_mm: float


class CalD3rMenD3s(Source):
    name = "cald3r-mend3s"
    sample_ids = dict.fromkeys(("cald3r", "mend3s"), _ID)
    roles = ("rgb", "depth")
    required = ("rgb", "depth")

    def __init__(
        self, root: Path | str, label_map: LabelMap | None = None, layout: Layout | None = None
    ):
        self.layout = layout or load_layout()
        super().__init__(root, label_map)

    def _index(self) -> ScanResult:
        result = ScanResult(self.name, self.root)
        files: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        found: dict[str, Found] = {}
        for path in self.files(result):
            parsed = self._parse(path)
            if isinstance(parsed, str):
                result.skipped.append(Skipped(path, parsed))
                continue
            dataset, role, fields, decision = parsed
            sample_id = f"{dataset}:{'_'.join(fields[g] for g in _GROUPS)}"
            files[sample_id][role].append(path)
            # The sex token stays out of the subject id: if it were wrong in one file, one
            # person would become two "subjects" and could straddle a split.
            found[sample_id] = Found(
                dataset, fields["subject"], fields["label"], decision, sex=fields["sex"].upper()
            )

        self._group(result, files, found)
        return result

    def _parse(self, path: Path):
        """(dataset, role, name fields, class) for a file, or the reason it does not fit."""
        layout = self.layout
        parts = path.relative_to(self.root).parts
        where = (
            f"<dataset>/<class>/<{layout.rgb_folder}|{layout.depth_folder}>/<file>, with dataset "
            f"in {sorted(layout.datasets)} and class in {sorted(layout.class_folders)}"
        )
        if len(parts) != 4:
            return f"not in the expected layout {where}"
        dataset_dir, class_dir, kind_dir, file_name = parts
        if dataset_dir not in layout.datasets or class_dir not in layout.class_folders:
            return f"not in the expected layout {where}"
        roles = {layout.rgb_folder: ("rgb", layout.rgb_pattern)}
        roles[layout.depth_folder] = ("depth", layout.depth_pattern)
        if kind_dir not in roles:
            return f"not in the expected layout {where}"
        role, pattern = roles[kind_dir]
        m = pattern.match(file_name)
        if m is None:
            return f"name fits no {role} pattern ({pattern.pattern})"
        fields = {g: m[g] for g in _GROUPS}
        folder_class = layout.class_folders[class_dir]
        token = fields["label"]
        table = self.label_map.codes.get(self.name, {})
        if token not in table:
            return f"label token {token!r} is not in the label table ({', '.join(sorted(table))})"
        decision = self.label_map.decide(self.name, token)
        if decision.label is not None and decision.label != folder_class:
            return f"mislabelled: file name says {decision.label!r} but it lies in {class_dir}/"
        return layout.datasets[dataset_dir], role, fields, decision

    def load(self, sample: SampleRecord) -> RgbdPair:
        rgb = read_rgb(sample.files["rgb"])
        depth = read_depth16(sample.files["depth"])
        if rgb.shape[:2] != depth.shape:
            raise FormatError(
                sample.files["depth"],
                f"depth is {depth.shape[1]}x{depth.shape[0]} but its RGB "
                f"{sample.files['rgb'].name} is {rgb.shape[1]}x{rgb.shape[0]}",
            )
        return RgbdPair(rgb=rgb, depth=depth, depth_unit_mm=self.layout.depth_unit_mm)
