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
from fer3d_bench import splits as sp
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import ConfigError, ManifestMismatch
from fer3d_bench.evaluation.folder import existing_result, merge_run_info
from fer3d_bench.io import inside
from fer3d_bench.names import checked_name
from fer3d_bench.records.provenance import environment, git_commit, now
from fer3d_bench.records.run import ProtocolEntry, RunInfo, flat_config, write_run_info
from fer3d_bench.train.config import (
    FULL,
    PAPER,
    PRESETS,
    TrainConfig,
    applied_protocol_train,
    variant_configs,
)
from fer3d_bench.weights.known import weights_record

RESULT_FILE = "result.json"


@dataclass
class EvalSpec:
    """What one `fer3d-bench evaluate` call asks for."""

    dataset: Path
    protocols: Sequence[str]
    out: Path
    manifests: Path = sp.MANIFESTS_DIR
    preset: str = "paper"
    overrides: dict = field(default_factory=dict)
    ablations: Sequence[str] = ()
    repetitions: int | None = None  # run only the first N repetitions of each protocol
    max_folds: int | None = None  # run only the first N folds of each repetition
    device: str = "auto"
    backbone_weights: Path | None = None
    trust_pickle: bool = False
    allow_architecture_mismatch: bool = False  # a known file into another backbone, recorded
    launcher: str = "local"
    exclude_flagged: bool = False  # leave training samples flagged low-quality out
    config_source: dict | None = None  # the --config file: {"file", "sha256"[, "tuned"]}
    experiment: dict | None = None  # what `reproduce` runs (experiments.Experiment.record)


@dataclass(frozen=True)
class Runtime:
    """Where the jobs will run, as far as the planning machine knows it (for run.json)."""

    device: str  # "cpu"/"cuda" when known, else what was asked ("auto")
    environment: dict = field(default_factory=environment)


@dataclass
class FoldJob:
    """One fold of one repetition of one protocol for one variant: picklable, self-contained."""

    run_dir: str
    folder: str  # relative to run_dir
    dataset: str
    manifest: str
    identity: dict  # the `job` block of result.json; equal blocks mean the same job
    classes: list[str]
    device: str = "auto"
    backbone_weights: str | None = None
    trust_pickle: bool = False
    allow_architecture_mismatch: bool = False
    weights: dict = field(default_factory=lambda: {"pretrained": False})  # for result.json
    progress: bool = False
    threads: int | None = None
    exclude_flagged: bool = False

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


def plan(spec: EvalSpec, runtime: Runtime | None = None, progress: bool = False) -> Plan:
    """Check everything, write run.json, and list the fold jobs; trains nothing."""
    runtime = runtime or Runtime(device=spec.device)
    variants = variant_configs(spec.preset, spec.overrides, spec.ablations)
    with H5Dataset(spec.dataset) as data:
        fingerprint, items = data.fingerprint, sp.items_of(data)
    run_dir = Path(spec.out)
    info = _run_info(spec, variants, fingerprint, runtime)
    manifests = {}
    for name in spec.protocols:  # keyed by the protocol's own name, never by the argument
        protocol, manifest, path = checked_manifest(name, spec.manifests, spec.dataset, items)
        if protocol.name in manifests and manifests[protocol.name][0] != protocol:
            raise ConfigError(f"{name}: another --protocol gave a different {protocol.name}")
        manifests[protocol.name] = (protocol, manifest, path)
        info.protocols[protocol.name] = _protocol_entry(protocol, manifest, path, spec)
    info = merge_run_info(run_dir / "run.json", info)
    jobs = []
    for protocol, manifest, path in manifests.values():  # the paper's settings for it
        configs = variant_configs(
            spec.preset, spec.overrides, spec.ablations, paper_train(protocol, spec)
        )
        jobs += [
            job
            for variant, config in configs.items()
            for job in _fold_jobs(spec, run_dir, variant, config, protocol, manifest, path, info)
        ]
    jobs.sort(key=lambda j: list(variants).index(j.identity["variant"]))  # variant by variant
    for job in jobs:
        job.progress = progress
        existing_result(job.result_path, job.identity)  # refuses another configuration's
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_info(run_dir / "run.json", info)
    return Plan(run_dir, info, jobs)


def checked_manifest(name: str, manifests: Path, dataset: Path, items: list[sp.Item]):
    """(protocol, manifest, path) of a protocol, refused unless the dataset matches it."""
    protocol = sp.load_protocol(name)
    path = Path(manifests) / protocol.name / f"{protocol.version}.json"
    manifest = sp.read_manifest(path)
    content = manifest.content
    if (content["protocol"], content["version"]) != (protocol.name, protocol.version):
        raise ManifestMismatch(
            f"{path}: holds {content['protocol']} {content['version']}, "
            f"not {protocol.name} {protocol.version}"
        )
    result = sp.verify(manifest, protocol, items)
    if not result.ok:
        details = "\n  ".join(result.describe())
        raise ManifestMismatch(
            f"{path} does not match {dataset} (as `fer3d-bench splits verify --manifest "
            f"{path} --dataset {dataset}` reports):\n  {details}\n"
            "Evaluate against the manifest the dataset was meant for (--manifests DIR), or "
            "generate one for this dataset with `fer3d-bench splits generate`."
        )
    return protocol, manifest, path


def _run_info(spec: EvalSpec, variants: dict, fingerprint: str, runtime: Runtime) -> RunInfo:
    commit, dirty = git_commit()
    weights = weights_record(
        spec.backbone_weights, variants[FULL].model.backbone, spec.allow_architecture_mismatch
    )
    return RunInfo(
        name=Path(spec.out).name,
        dataset={"path": str(spec.dataset), "fingerprint": fingerprint},
        preset=spec.preset,
        overrides=dict(sorted(spec.overrides.items())),
        config_file=spec.config_source,
        experiment=spec.experiment,
        backbone_weights=_weights_identity(weights),
        weights=weights,
        exclude_flagged=spec.exclude_flagged,
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
    )


def _weights_identity(record: dict) -> dict | None:
    """Pretrained weights change every result: their sha256 is part of each job's identity."""
    return {"file": record["file"], "sha256": record["sha256"]} if record["pretrained"] else None


def _protocol_entry(
    protocol: sp.Protocol, manifest: sp.Manifest, path: Path, spec
) -> ProtocolEntry:
    total_reps = len(manifest.content["repetitions"])
    total_folds = protocol.folds_per_repetition
    return ProtocolEntry(
        version=protocol.version,
        kind=protocol.kind,
        manifest=str(path),
        manifest_sha256=manifest.sha256,
        classes=list(protocol.classes),
        seed=protocol.seed,
        repetitions_total=total_reps,
        folds_total=total_folds,
        repetitions_run=min(total_reps, spec.repetitions or total_reps),
        folds_run=min(total_folds, spec.max_folds or total_folds),
        train_defaults=paper_train(protocol, spec),
        train_applied={
            key: value
            for key, value in applied_protocol_train(
                spec.preset, paper_train(protocol, spec)
            ).items()
            if key not in spec.overrides
        },
    )


def _fold_jobs(
    spec: EvalSpec,
    run_dir: Path,
    variant: str,
    config: TrainConfig,
    protocol: sp.Protocol,
    manifest: sp.Manifest,
    path: Path,
    info: RunInfo,
) -> list[FoldJob]:
    entry = info.protocols[protocol.name]
    config_dict = config.as_dict()
    prefix = variant_prefix(checked_name(variant, "variant"))
    jobs = []
    for rep in range(min(entry.repetitions_total, spec.repetitions or 10**9)):
        for fold in range(min(entry.folds_total, spec.max_folds or 10**9)):
            identity = {
                "variant": variant,
                "protocol": protocol.name,
                "protocol_version": protocol.version,
                "manifest_sha256": manifest.sha256,
                "repetition": rep,
                "fold": fold,
                "dataset_fingerprint": info.fingerprint,
                "config": config_dict,
                "config_sha256": _sha(config_dict),
                "seed": config.seed,
                "backbone_weights": info.backbone_weights,
            }
            if spec.exclude_flagged:  # absent otherwise: jobs of earlier versions stay valid
                identity["exclude_flagged"] = True
            folder = f"{prefix}{protocol.name}/{rep}/{fold}"
            inside(run_dir, run_dir / folder)  # names were checked where read; paths are too
            jobs.append(
                FoldJob(
                    run_dir=str(run_dir.resolve()),
                    folder=folder,
                    dataset=str(Path(spec.dataset).resolve()),
                    manifest=str(Path(path).resolve()),
                    identity=identity,
                    classes=list(protocol.classes),
                    device=spec.device,
                    backbone_weights=str(spec.backbone_weights) if spec.backbone_weights else None,
                    trust_pickle=spec.trust_pickle,
                    allow_architecture_mismatch=spec.allow_architecture_mismatch,
                    weights=info.weights_record,
                    exclude_flagged=spec.exclude_flagged,
                )
            )
    return jobs


def paper_train(protocol: sp.Protocol, spec: EvalSpec) -> dict:
    """The paper's training settings for `protocol` in this run: the protocol's [train] table,
    then the experiment's (Table VIII's 10 epochs), which is the more specific."""
    return protocol.train_overrides | dict((spec.experiment or {}).get("train") or {})


def variant_prefix(variant: str) -> str:
    """Where a variant's folds lie in the run folder: the reference model at the top."""
    return "" if variant == FULL else f"ablation-{variant}/"


def _sha(values: dict) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
