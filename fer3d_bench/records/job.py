"""A fold job's identity: the `job` block of result.json, and where the job's folder lies.

Equal identities mean the same job: a finished result.json whose identity equals a planned
job's is that job done; one that differs is another job's, refused. The JSON keeps the keys
and bytes of every earlier version: a trained job's block holds its configuration, seed and
pretrained weights (and `exclude_flagged` only when true); a scored submission's holds none of
them. Keys a block lacks take the value they had before they existed; keys of another
version are kept as they are (`extra`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from fer3d_bench.names import checked_name
from fer3d_bench.records.io import SchemaMismatch

FULL = "full"  # the reference model's variant: its folds lie at the top of a run folder
REQUIRED = (
    "variant",
    "protocol",
    "repetition",
    "fold",
    "config_sha256",
    "manifest_sha256",
    "dataset_fingerprint",
)


def variant_prefix(variant: str) -> str:
    """Where a variant's folds lie in a run folder: the reference model at the top, each
    ablation under `ablation-<variant>/`."""
    return "" if variant == FULL else f"ablation-{variant}/"


def fold_folder(variant: str, protocol: str, repetition: int, fold: int) -> str:
    """A fold job's folder, relative to its run folder."""
    return f"{variant_prefix(variant)}{protocol}/{repetition}/{fold}"


@dataclass(frozen=True)
class Training:
    """What a trained job was trained with (a scored submission has none)."""

    config: dict
    seed: int | None = None  # absent before 0.5
    backbone_weights: dict | None = None  # {"file", "sha256"} of the pretrained weights
    exclude_flagged: bool = False  # written only when true, so earlier jobs stay valid


@dataclass(frozen=True)
class JobIdentity:
    variant: str
    protocol: str
    protocol_version: str | None
    manifest_sha256: str
    repetition: int
    fold: int
    dataset_fingerprint: str | None  # None for scored predictions: no dataset was read
    config_sha256: str  # of the configuration; of the predictions file for a submission
    training: Training | None = None
    extra: dict = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return fold_folder(self.variant, self.protocol, self.repetition, self.fold)

    @property
    def position(self) -> tuple[int, int]:
        """(repetition, fold)."""
        return self.repetition, self.fold

    def to_json(self) -> dict:
        data = {
            "variant": self.variant,
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "manifest_sha256": self.manifest_sha256,
            "repetition": self.repetition,
            "fold": self.fold,
            "dataset_fingerprint": self.dataset_fingerprint,
            "config_sha256": self.config_sha256,
        }
        if self.training is not None:
            data |= {
                "config": self.training.config,
                "seed": self.training.seed,
                "backbone_weights": self.training.backbone_weights,
            }
            if self.training.exclude_flagged:
                data["exclude_flagged"] = True
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> JobIdentity:
        if not isinstance(data, dict) or any(key not in data for key in REQUIRED):
            raise SchemaMismatch(path, f"the 'job' block must hold {list(REQUIRED)}")
        checked_name(data["variant"], "variant", path)  # both name folders and figures
        checked_name(data["protocol"], "protocol", path)
        for key in ("repetition", "fold"):
            if not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 0:
                raise SchemaMismatch(path, f"the job's {key} must be a whole number >= 0")
        training = None
        if "config" in data:
            if not isinstance(data["config"], dict):
                raise SchemaMismatch(path, "the job's config must be an object")
            training = Training(
                config=data["config"],
                seed=data.get("seed"),
                backbone_weights=data.get("backbone_weights"),
                exclude_flagged=data.get("exclude_flagged") is True,
            )
        known = {f.name for f in fields(cls)} | {f.name for f in fields(Training)}
        return cls(
            variant=data["variant"],
            protocol=data["protocol"],
            protocol_version=data.get("protocol_version"),
            manifest_sha256=data["manifest_sha256"],
            repetition=data["repetition"],
            fold=data["fold"],
            dataset_fingerprint=data["dataset_fingerprint"],
            config_sha256=data["config_sha256"],
            training=training,
            extra={k: v for k, v in data.items() if k not in known},
        )
