"""The 7-class taxonomy and each dataset's mapping onto it, read from data (labels.toml)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fer3d_bench.errors import ConfigError

CLASSES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)
EXCLUDE = "exclude"
_SUFFIXED_AU = re.compile(r"^[LU]FAU_\d+[A-Za-z]+$")


def class_index(name: str) -> int:
    """Index of a class in the fixed order; the integer label stored in every output."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASSES)}") from None


@dataclass(frozen=True)
class LabelDecision:
    """Either a class, or the reason a code is excluded."""

    label: str | None
    reason: str | None = None


@dataclass(frozen=True)
class LabelMap:
    """Per dataset: code -> class; for Bosphorus also kind -> exclusion reason."""

    codes: dict[str, dict[str, str]]
    excluded_kinds: dict[str, str] = field(default_factory=dict)

    def decide(self, dataset: str, code: str) -> LabelDecision:
        """Map one dataset code to a class, or say why it is excluded."""
        table = self.codes.get(dataset, {})
        label = table.get(code)
        if label == EXCLUDE:
            return LabelDecision(None, f"code {code} excluded by the label map")
        if label is not None:
            return LabelDecision(label)
        if dataset == "bosphorus":
            return LabelDecision(None, self._bosphorus_reason(code))
        return LabelDecision(None, f"code {code!r} is not in the {dataset} label table")

    def _bosphorus_reason(self, code: str) -> str:
        if _SUFFIXED_AU.match(code):
            return "suffixed action-unit variant (not mapped by default)"
        kind = code.split("_", 1)[0]
        return self.excluded_kinds.get(kind, f"scan kind {kind!r} not in the label table")

    def as_dict(self) -> dict:
        """Plain form, stored with outputs so a result names the mapping it used."""
        return {
            "classes": list(CLASSES),
            "codes": self.codes,
            "excluded_kinds": self.excluded_kinds,
        }


def load_label_map(override: Path | None = None) -> LabelMap:
    """The default label map, with a user's TOML file applied on top entry by entry."""
    default = tomllib.loads(resources.files("fer3d_bench").joinpath("labels.toml").read_text())
    data = _merge(default, _read_toml(override)) if override else default
    if tuple(data.get("classes", ())) != CLASSES:
        where = override or "labels.toml"
        raise ConfigError(f"{where}: the class list must be exactly {list(CLASSES)}")
    codes = {
        name: dict(table.get("codes", {})) for name, table in data.items() if name != "classes"
    }
    for dataset, table in codes.items():
        for code, label in table.items():
            if label not in CLASSES and label != EXCLUDE:
                raise ConfigError(
                    f"{override or 'labels.toml'}: [{dataset}.codes] {code} = {label!r} is not a "
                    f"class; expected one of {', '.join(CLASSES)} or {EXCLUDE!r}"
                )
    kinds = dict(data.get("bosphorus", {}).get("excluded_kinds", {}))
    return LabelMap(codes=codes, excluded_kinds=kinds)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: label map file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML label map ({exc})") from None


def _merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged
