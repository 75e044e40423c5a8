"""Planning: check the dataset against each protocol's manifest, write run.json, list the jobs.

Nothing is trained and torch is never imported: a run can be planned (and refused) on a login
node. What only the training machine knows (its device, CUDA, the GPU) comes in as `Runtime`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench import __version__
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import ConfigError
from fer3d_bench.evaluation.folder import existing_result, merge_run_info
from fer3d_bench.io import inside, output_folder
from fer3d_bench.manifests import CheckedManifest, items_of
from fer3d_bench.names import checked_name
from fer3d_bench.records.conditions import SELECTIONS
from fer3d_bench.records.job import JobIdentity, Training
from fer3d_bench.records.provenance import environment, git_commit, now
from fer3d_bench.records.run import ProtocolEntry, RunInfo, flat_config, write_run_info
from fer3d_bench.splits import MANIFESTS_DIR, Protocol, manifest_path, read_manifest
from fer3d_bench.train.config import (
    FULL,
    PAPER,
    PRESETS,
    TrainConfig,
    applied_protocol_train,
    protocol_train,
    variant_configs,
)
from fer3d_bench.train.environment import TrainingEnvironment
from fer3d_bench.weights.known import weights_record

RESULT_FILE = "result.json"


@dataclass
class EvalSpec:
    """What one `fer3d-bench evaluate` call asks for."""

    dataset: Path
    protocols: Sequence[str]
    out: Path
    manifests: Path = MANIFESTS_DIR
    preset: str = "paper"
    overrides: dict = field(default_factory=dict)
    ablations: Sequence[str] = ()
    repetitions: int | None = None  # run only the first N repetitions of each protocol
    max_folds: int | None = None  # run only the first N folds of each repetition
    environment: TrainingEnvironment = field(default_factory=TrainingEnvironment)
    launcher: str = "local"
    config_source: dict | None = None  # the --config file: {"file", "sha256"[, "tuned"]}
    experiment: dict | None = None  # what `reproduce` runs (experiments.Experiment.record)
    # how each fold's reported epoch is chosen (records.conditions.SELECTIONS), every protocol;
    # None: the experiment's [epoch_selection] for it, else "last". Every fold records both,
    # so it is no part of a job's identity: a resumed run may change it
    epoch_selection: str | None = None


@dataclass(frozen=True)
class Runtime:
    """Where the jobs will run, as far as the planning machine knows it (for run.json)."""

    device: str  # "cpu"/"cuda" when known, else what was asked ("auto")
    environment: dict = field(default_factory=environment)


@dataclass
class FoldJob:
    """One fold of one repetition of one protocol for one variant: picklable, self-contained."""

    run_dir: str
    folder: str  # relative to run_dir (evaluate: identity.folder)
    dataset: str
    manifest: str
    identity: JobIdentity  # the `job` block of result.json; equal identities, the same job
    classes: list[str]
    environment: TrainingEnvironment = field(default_factory=TrainingEnvironment)
    weights: dict = field(default_factory=lambda: {"pretrained": False})  # for result.json

    @property
    def result_path(self) -> Path:
        return Path(self.run_dir) / self.folder / RESULT_FILE


@dataclass
class Plan:
    run_dir: Path
    info: RunInfo
    jobs: list[FoldJob]

    def pending(self) -> list[FoldJob]:
        return [j for j in self.jobs if not j.result_path.exists()]


def plan(spec: EvalSpec, runtime: Runtime | None = None) -> Plan:
    """Check everything, write run.json, and list the fold jobs; trains nothing."""
    runtime = runtime or Runtime(device=spec.environment.placement.device)
    if spec.epoch_selection is not None and spec.epoch_selection not in SELECTIONS:
        raise ConfigError(
            f"epoch selection {spec.epoch_selection!r}: expected one of {', '.join(SELECTIONS)}"
        )
    variants = variant_configs(spec.preset, spec.overrides, spec.ablations)
    with H5Dataset(spec.dataset) as data:
        fingerprint, items = data.fingerprint, items_of(data)
    run_dir = Path(spec.out)
    info = _run_info(spec, variants, fingerprint, runtime)
    manifests: dict[str, CheckedManifest] = {}
    for name in spec.protocols:  # keyed by the protocol's own name, never by the argument
        found = CheckedManifest.of_protocol(name, spec.manifests).against(spec.dataset, items)
        protocol = found.protocol
        if protocol.name in manifests and manifests[protocol.name].protocol != protocol:
            raise ConfigError(f"{name}: another --protocol gave a different {protocol.name}")
        manifests[protocol.name] = found
        info.protocols[protocol.name] = _protocol_entry(found, spec)
    info = merge_run_info(run_dir / "run.json", info)
    jobs = []
    for found in manifests.values():  # the paper's settings for it
        configs = variant_configs(
            spec.preset, spec.overrides, spec.ablations, paper_train(found.protocol, spec)
        )
        jobs += [
            job
            for variant, config in configs.items()
            for job in _fold_jobs(spec, run_dir, variant, config, found, info)
        ]
    jobs.sort(key=lambda j: list(variants).index(j.identity.variant))  # variant by variant
    for job in jobs:
        existing_result(job.result_path, job.identity)  # refuses another configuration's
    output_folder(run_dir)  # the folder given: made with its parents
    write_run_info(run_dir / "run.json", info)
    return Plan(run_dir, info, jobs)


def _run_info(spec: EvalSpec, variants: dict, fingerprint: str, runtime: Runtime) -> RunInfo:
    commit, dirty = git_commit()
    request = spec.environment.weights
    weights = weights_record(
        request.path, variants[FULL].model.backbone, request.allow_architecture_mismatch
    )
    return RunInfo(
        name=Path(spec.out).name,
        dataset={"path": str(spec.dataset), "fingerprint": fingerprint},
        preset=spec.preset,
        overrides=dict(sorted(spec.overrides.items())),
        config_file=spec.config_source,
        experiment=spec.experiment,
        backbone_weights=weights_identity(weights),
        weights=weights,
        exclude_flagged=spec.environment.exclude_flagged,
        reference={"paper": flat_config(PRESETS[PAPER].as_dict())},
        variants={name: config.as_dict() for name, config in variants.items()},
        protocols={},
        fer3d_bench_version=__version__,
        git_commit=commit,
        git_dirty=dirty,
        device=runtime.device,
        launcher=spec.launcher,
        environment=runtime.environment,
        created=now(),
        # the speed levers, beside the device (train.environment.Speed): as resolved where the
        # jobs run here, else as asked; each fold's result.json records its own
        extra={"speed": spec.environment.placement.speed.record()},
    )


def _protocol_entry(found: CheckedManifest, spec: EvalSpec) -> ProtocolEntry:
    protocol, manifest = found.protocol, found.manifest
    total_reps = manifest.repetitions
    total_folds = protocol.folds_per_repetition
    train = paper_train(protocol, spec)
    return ProtocolEntry(
        version=protocol.version,
        kind=protocol.kind,
        manifest=str(found.path),
        manifest_sha256=manifest.sha256,
        classes=list(protocol.classes),
        seed=protocol.seed,
        repetitions_total=total_reps,
        folds_total=total_folds,
        repetitions_run=min(total_reps, spec.repetitions or total_reps),
        folds_run=min(total_folds, spec.max_folds or total_folds),
        train_defaults=train,
        train_applied={
            key: value
            for key, value in applied_protocol_train(spec.preset, train).items()
            if key not in spec.overrides
        },
        unit=protocol.unit,
        epoch_selection=epoch_selection(protocol, spec),
        manifest_published=is_published(found),
        subjects=len({entry.subject for entry in manifest.samples().values()}),
        samples=len(manifest),
    )


def epoch_selection(protocol: Protocol, spec: EvalSpec) -> str:
    """How each fold's reported epoch is chosen for `protocol` in this run: --epoch-selection
    where given, else the experiment's [epoch_selection] for it, else the last epoch."""
    table = (spec.experiment or {}).get("epoch_selection") or {}
    return spec.epoch_selection or table.get(protocol.name) or "last"


def is_published(found: CheckedManifest) -> bool:
    """Whether the manifest used is the one fer3d-bench publishes for its protocol and version
    (the same sha256 as the installed `data_manifests/<name>/<version>.json`); False where it
    publishes none."""
    published = manifest_path(MANIFESTS_DIR, found.protocol)
    if not published.is_file():
        return False
    if published.resolve() == Path(found.path).resolve():
        return True
    return read_manifest(published).sha256 == found.manifest.sha256


def _fold_jobs(
    spec: EvalSpec,
    run_dir: Path,
    variant: str,
    config: TrainConfig,
    found: CheckedManifest,
    info: RunInfo,
) -> list[FoldJob]:
    entry = info.protocols[found.protocol.name]
    checked_name(variant, "variant")
    jobs = []
    for rep in range(min(entry.repetitions_total, spec.repetitions or 10**9)):
        for fold in range(min(entry.folds_total, spec.max_folds or 10**9)):
            identity = job_identity(
                found,
                variant,
                config,
                (rep, fold),
                info.fingerprint,
                info.backbone_weights,
                spec.environment.exclude_flagged,
            )
            inside(run_dir, run_dir / identity.folder)  # names were checked where read
            jobs.append(
                FoldJob(
                    run_dir=str(run_dir.resolve()),
                    folder=identity.folder,
                    dataset=str(Path(spec.dataset).resolve()),
                    manifest=str(Path(found.path).resolve()),
                    identity=identity,
                    classes=list(found.protocol.classes),
                    environment=spec.environment,
                    weights=info.weights_record,
                )
            )
    return jobs


def job_identity(
    found: CheckedManifest,
    variant: str,
    config: TrainConfig,
    position: tuple[int, int],
    fingerprint: str,
    backbone_weights: dict | None,
    exclude_flagged: bool,
) -> JobIdentity:
    """The identity of training `config` on one (repetition, fold) of a checked manifest."""
    values = config.as_dict()
    training = Training(values, config.seed, backbone_weights, exclude_flagged)
    return JobIdentity(
        variant=variant,
        protocol=found.protocol.name,
        protocol_version=found.protocol.version,
        manifest_sha256=found.manifest.sha256,
        repetition=position[0],
        fold=position[1],
        dataset_fingerprint=fingerprint,
        config_sha256=_sha(values),
        training=training,
    )


def weights_identity(record: dict) -> dict | None:
    """Pretrained weights change every result: their sha256 is part of each job's identity."""
    return {"file": record["file"], "sha256": record["sha256"]} if record["pretrained"] else None


def paper_train(protocol: Protocol, spec: EvalSpec) -> dict:
    """The paper's training settings for `protocol` in this run: the protocol's [train] table,
    then the experiment's (Table VIII's 10 epochs), which is the more specific."""
    return protocol_train(protocol) | dict((spec.experiment or {}).get("train") or {})


def _sha(values: dict) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
