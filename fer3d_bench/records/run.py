"""run.json: what an evaluation run is (dataset, manifests, configuration per variant, versions).

The schema id stays `fer3d-bench/run/1`: every key written since 0.5 is read, keys a file lacks
take the value they had before they existed, and keys this version does not know are kept as
they are (`extra`), so a folder written by a newer minor version survives a resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from fer3d_bench.names import checked_name, checked_version
from fer3d_bench.records.io import SchemaMismatch, read_json, write_json

RUN_SCHEMA = "fer3d-bench/run/1"
KINDS = ("kfold", "holdout", "cross")
_REQUIRED = ("version", "kind", "repetitions_total", "folds_total", "repetitions_run")
_ONLY_IF_SET = ("weights", "reference", "config_file", "experiment", "submission")


@dataclass
class ProtocolEntry:
    """One protocol of a run: its version, manifest and how much of it was asked for."""

    version: str
    kind: str
    repetitions_total: int
    folds_total: int
    repetitions_run: int
    folds_run: int | None = None  # None in runs older than --max-folds: all folds
    manifest: str | None = None
    manifest_sha256: str | None = None
    classes: list[str] | None = None
    seed: int | None = None
    # the protocol's [train] table (the paper's settings for it), and the part of it this run's
    # configs took (all of it on the paper preset, less what --config/--epochs set); None
    # before 0.10, which had no such table
    train_defaults: dict | None = None
    train_applied: dict | None = None

    @property
    def folds_planned(self) -> int:
        return self.folds_total if self.folds_run is None else self.folds_run

    @property
    def expected_folds(self) -> int:
        return self.repetitions_run * self.folds_planned

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        optional = ("folds_run", "train_defaults", "train_applied")
        return {k: v for k, v in data.items() if not (k in optional and v is None)}

    @classmethod
    def from_json(cls, data: dict, path: Path, name: str) -> ProtocolEntry:
        if not isinstance(data, dict):
            raise SchemaMismatch(path, f"protocol {name!r} must be an object")
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise SchemaMismatch(path, f"protocol {name!r} lacks {missing}")
        checked_version(data["version"], f"protocol {name!r} version", path)
        if data["kind"] not in KINDS:
            raise SchemaMismatch(path, f"protocol {name!r} has unknown kind {data['kind']!r}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RunInfo:
    """The typed run.json. `variants` holds each variant's configuration as recorded."""

    variants: dict[str, dict]
    protocols: dict[str, ProtocolEntry]
    name: str = ""
    dataset: dict = field(default_factory=dict)  # {"path", "fingerprint"}
    preset: str | None = None
    overrides: dict = field(default_factory=dict)
    # the --config file the overrides came from: {"file", "sha256"} and, for one `tune` wrote,
    # "tuned" (its study, trial and the fold whose training subjects it was tuned on)
    config_file: dict | None = None
    experiment: dict | None = None  # what `reproduce` ran: name, version, title, table, train
    # predictions scored by `fer3d-bench score`: the submitter's model, url and description as
    # given, and the file's name and sha256; None for a run fer3d-bench trained
    submission: dict | None = None
    backbone_weights: dict | None = None  # {"file", "sha256"}: part of every job's identity
    # what the weights are (weights.known.weights_record); None before 0.10
    weights: dict | None = None
    exclude_flagged: bool = False
    # {"paper": the paper preset's config, dotted keys}, as this version reads the paper; the
    # report adds each protocol's train_defaults to it. Up to 0.9 {"differs_from_paper": ...}
    reference: dict = field(default_factory=dict)
    fer3d_bench_version: str | None = None
    git_commit: str = "unknown"
    git_dirty: bool = False
    device: str | None = None
    launcher: str | None = None
    environment: dict = field(default_factory=dict)
    created: str | None = None
    resumed_with: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # keys of another version, kept as they were

    @property
    def fingerprint(self) -> str | None:
        return self.dataset.get("fingerprint")

    @property
    def weights_record(self) -> dict:
        """The weights record, or what an earlier version's run.json allows to say of them."""
        if self.weights is not None:
            return self.weights
        if self.backbone_weights is None:
            return {"pretrained": False}
        return {"pretrained": True, **self.backbone_weights, "known": None}  # not identified

    def to_json(self) -> dict:
        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("protocols", "resumed_with", "extra", *_ONLY_IF_SET)
        }
        for key in _ONLY_IF_SET:  # absent rather than empty, as before they existed
            if getattr(self, key):
                data[key] = getattr(self, key)
        data["schema"] = RUN_SCHEMA
        data["protocols"] = {name: p.to_json() for name, p in self.protocols.items()}
        if self.resumed_with:
            data["resumed_with"] = self.resumed_with
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> RunInfo:
        if data.get("schema") != RUN_SCHEMA:
            raise SchemaMismatch(
                path,
                f"not a fer3d-bench run (expected schema {RUN_SCHEMA!r}, "
                f"found {data.get('schema')!r})",
            )
        variants, protocols = data.get("variants"), data.get("protocols")
        if not isinstance(variants, dict) or "full" not in variants:
            raise SchemaMismatch(path, "'variants' must be an object holding at least 'full'")
        if not isinstance(protocols, dict) or not protocols:
            raise SchemaMismatch(path, "'protocols' must be a non-empty object")
        for name in [*variants, *protocols]:  # each names a folder of the run
            checked_name(name, "variant or protocol name", path)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["protocols"] = {
            name: ProtocolEntry.from_json(entry, path, name) for name, entry in protocols.items()
        }
        values["extra"] = {k: v for k, v in data.items() if k not in known and k != "schema"}
        return cls(**values)


def flat_config(values: dict, prefix: str = "") -> dict:
    """A recorded config as dotted key -> value (`{"model.backbone": ...}`), lists for tuples."""
    out: dict = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def read_run_info(path: Path) -> RunInfo:
    path = Path(path)
    return RunInfo.from_json(read_json(path, what="run.json of an evaluation run folder"), path)


def write_run_info(path: Path, info: RunInfo) -> Path:
    return write_json(path, info.to_json())
