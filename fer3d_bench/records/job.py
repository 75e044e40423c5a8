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
from fer3d_bench.records.io import Fields, SchemaMismatch

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
    def from_json(cls, data: object, path: Path) -> JobIdentity:
        read = Fields(path, data, "job")
        missing = [key for key in REQUIRED if key not in read.data]
        if missing:
            raise SchemaMismatch(
                path, f"the 'job' block must hold {list(REQUIRED)}; lacks {missing}"
            )
        training = None
        if "config" in read.data:
            training = Training(
                config=read.object("config"),
                seed=read.integer("seed", null=True, optional=True),
                backbone_weights=read.object("backbone_weights", null=True, optional=True),
                exclude_flagged=read.boolean("exclude_flagged", optional=True, default=False),
            )
        return cls(
            # both name folders and figures
            variant=checked_name(read.string("variant"), "variant", path),
            protocol=checked_name(read.string("protocol"), "protocol", path),
            protocol_version=read.string("protocol_version", null=True, optional=True),
            manifest_sha256=read.string("manifest_sha256"),
            repetition=read.integer("repetition", min=0),
            fold=read.integer("fold", min=0),
            dataset_fingerprint=read.string("dataset_fingerprint", null=True),
            config_sha256=read.string("config_sha256"),
            training=training,
            extra=read.extra(cls, also=tuple(f.name for f in fields(Training))),
        )
