"""run.json: what an evaluation run is (dataset, manifests, configuration per variant, versions).

The schema id stays `fer3d-bench/run/1`: every key written since 0.5 is read, keys a file lacks
take the value they had before they existed, and keys this version does not know are kept as
they are (`extra`), so a folder written by a newer minor version survives a resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from fer3d_bench.names import checked_name, checked_version
from fer3d_bench.records.conditions import SELECTIONS, UNITS
from fer3d_bench.records.io import (
    Fields,
    SchemaMismatch,
    dict_of,
    is_dict,
    is_str,
    read_json,
    write_json,
)

RUN_SCHEMA = "fer3d-bench/run/1"
KINDS = ("kfold", "holdout", "cross")
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
    # the conditions of its numbers (records.conditions), recorded since 0.16: the unit its
    # folds are dealt by, how each fold's reported epoch is chosen, whether the manifest is the
    # one fer3d-bench publishes for the protocol, and its size. A run.json of an earlier
    # version lacks them: its protocols all dealt by subject and reported the last epoch, and
    # whether its manifest was the published one is not known (None)
    unit: str | None = None
    epoch_selection: str | None = None
    manifest_published: bool | None = None
    subjects: int | None = None
    samples: int | None = None

    @property
    def dealt_by(self) -> str:
        """The unit its folds are dealt by: every protocol before 0.16 dealt by subject."""
        return self.unit or "subject"

    @property
    def selection(self) -> str:
        """How each fold's reported epoch is chosen: the last, before 0.16."""
        return self.epoch_selection or "last"

    @property
    def folds_planned(self) -> int:
        return self.folds_total if self.folds_run is None else self.folds_run

    @property
    def expected_folds(self) -> int:
        return self.repetitions_run * self.folds_planned

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        optional = (
            "folds_run",
            "train_defaults",
            "train_applied",
            "unit",
            "epoch_selection",
            "manifest_published",
            "subjects",
            "samples",
        )
        return {k: v for k, v in data.items() if not (k in optional and v is None)}

    @classmethod
    def from_json(cls, data: object, path: Path, name: str, where: str = "") -> ProtocolEntry:
        read = Fields(path, data, where or f"protocols.{name}")
        some = {"null": True, "optional": True}
        return cls(
            version=checked_version(read.string("version"), f"protocol {name!r} version", path),
            kind=read.string("kind", choices=KINDS),
            repetitions_total=read.integer("repetitions_total", min=1),
            folds_total=read.integer("folds_total", min=1),
            repetitions_run=read.integer("repetitions_run", min=1),
            folds_run=read.integer("folds_run", min=1, **some),
            manifest=read.string("manifest", **some),
            manifest_sha256=read.string("manifest_sha256", **some),
            classes=read.array("classes", is_str, "class names", **some),
            seed=read.integer("seed", **some),
            train_defaults=read.object("train_defaults", **some),
            train_applied=read.object("train_applied", **some),
            unit=read.string("unit", choices=UNITS, **some),
            epoch_selection=read.string("epoch_selection", choices=SELECTIONS, **some),
            manifest_published=read.get(
                "manifest_published",
                lambda v: v is None or isinstance(v, bool),
                "true, false or null",
                optional=True,
            ),
            subjects=read.integer("subjects", min=0, **some),
            samples=read.integer("samples", min=0, **some),
        )


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
    def from_json(cls, data: object, path: Path, where: str = "") -> RunInfo:
        """The typed run.json (at `where` in `path`: report.json holds one as `run`): each key
        its readers rely on checked (`Fields`); keys of another version kept in `extra`."""
        read = Fields(path, data, where)
        if read.data.get("schema") != RUN_SCHEMA:
            raise SchemaMismatch(
                path,
                f"not a fer3d-bench run (expected schema {RUN_SCHEMA!r}, "
                f"found {read.data.get('schema')!r})",
            )
        variants = read.get("variants", dict_of(is_dict), "an object of configurations")
        if "full" not in variants:
            read.fail("variants", "must hold at least 'full'")
        protocols = read.object("protocols")
        if not protocols:
            read.fail("protocols", "must name at least one protocol")
        for name in [*variants, *protocols]:  # each names a folder of the run
            checked_name(name, "variant or protocol name", path)
        some = {"null": True, "optional": True}
        return cls(
            variants=variants,
            protocols={
                name: ProtocolEntry.from_json(entry, path, name, read.at(f"protocols.{name}"))
                for name, entry in protocols.items()
            },
            name=read.string("name", optional=True, default=""),
            dataset=_dataset(read),
            preset=read.string("preset", **some),
            overrides=read.object("overrides", optional=True, default={}),
            config_file=_config_file(read),
            experiment=_experiment(read),
            submission=_submission(read),
            backbone_weights=read.object("backbone_weights", **some),
            weights=read.object("weights", **some),
            exclude_flagged=read.boolean("exclude_flagged", optional=True, default=False),
            reference=_reference(read),
            fer3d_bench_version=read.string("fer3d_bench_version", **some),
            git_commit=read.string("git_commit", optional=True, default="unknown"),
            git_dirty=read.boolean("git_dirty", optional=True, default=False),
            device=read.string("device", **some),
            launcher=read.string("launcher", **some),
            environment=read.object("environment", optional=True, default={}),
            created=read.string("created", **some),
            resumed_with=read.array("resumed_with", is_dict, "objects", optional=True, default=[]),
            extra=read.extra(cls, also=("schema",)),
        )


def _dataset(read: Fields) -> dict:
    inner = read.nested("dataset")
    if inner is None:
        return {}
    inner.string("path", optional=True)
    inner.string("fingerprint", null=True, optional=True)
    return inner.data


def _config_file(read: Fields) -> dict | None:
    inner = read.nested("config_file", null=True)
    if inner is None:
        return None
    inner.object("tuned", optional=True)  # the report says what it was tuned on
    return inner.data


def _experiment(read: Fields) -> dict | None:
    inner = read.nested("experiment", null=True)
    if inner is None:
        return None
    inner.string("name")
    inner.string("table")  # the report lays out the paper's table it names
    inner.object("train", null=True, optional=True)
    return inner.data


def _submission(read: Fields) -> dict | None:
    inner = read.nested("submission", null=True)
    if inner is None:
        return None
    inner.string("predictions")  # the report names the file scored, and its sha256
    inner.string("sha256")
    return inner.data


def _reference(read: Fields) -> dict:
    inner = read.nested("reference")
    if inner is None:
        return {}
    inner.object("paper", optional=True)
    pairs = dict_of(lambda v: isinstance(v, list) and len(v) == 2)
    inner.get("differs_from_paper", pairs, "an object of [ours, paper]", optional=True)
    return inner.data


# configuration fields recorded only when they differ from their default, so that every
# configuration that existed before them keeps its recorded dict and its hash (its folds'
# identity); a record without one holds it at this default
RECORDED_IF_SET = {"amp_dtype": "auto"}


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
