"""Run a protocol's folds as independent, resumable jobs, each leaving one result.json.

A run folder holds `run.json` (the dataset, manifests, configuration per variant and versions)
and one folder per fold job: `<protocol>/<repetition>/<fold>/` for the reference model and
`ablation-<variant>/<protocol>/<repetition>/<fold>/` for an ablation, each with its
`checkpoint.pt`, `metrics.jsonl` and, once finished, `result.json`. A job whose result.json
holds the same job block is skipped; one interrupted mid-training resumes from its checkpoint;
a folder holding another configuration is refused before anything trains. Jobs run one after
another, in a process pool, or as a submitit job array (slurm, or submitit's local executor).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fer3d_bench import __version__
from fer3d_bench import splits as sp
from fer3d_bench.errors import ConfigError, Fer3dError
from fer3d_bench.io import atomic_path
from fer3d_bench.report import RESULT_SCHEMA, RUN_SCHEMA, fold_metrics

LAUNCHERS = ("local", "slurm", "submitit-local")


class ManifestMismatch(Fer3dError):
    """The dataset does not hold exactly what a protocol's manifest names."""


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
    launcher: str = "local"
    exclude_flagged: bool = False  # leave training samples flagged low-quality out


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
    progress: bool = False
    threads: int | None = None
    exclude_flagged: bool = False

    @property
    def result_path(self) -> Path:
        return Path(self.run_dir) / self.folder / "result.json"


@dataclass
class Plan:
    run_dir: Path
    info: dict  # run.json
    jobs: list[FoldJob]

    def pending(self) -> list[FoldJob]:
        return [j for j in self.jobs if not j.result_path.exists()]


def load_config_file(path: Path) -> tuple[str | None, dict]:
    """(preset or None, overrides) from a TOML config; unknown keys are refused by name."""
    from fer3d_bench.train.loop import PRESETS, config_keys

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    preset = data.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"{path}: preset {preset!r} is not one of {sorted(PRESETS)}")
    overrides = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("model", "loss"):
            overrides.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            overrides[key] = value
    unknown = sorted(set(overrides) - set(config_keys()))
    if unknown:
        raise ConfigError(
            f"{path}: unknown configuration key(s) {', '.join(unknown)}; "
            f"known: preset, {', '.join(config_keys())}"
        )
    return preset, overrides


def plan(spec: EvalSpec, progress: bool = False) -> Plan:
    """Check everything, write run.json, and list the fold jobs; trains nothing."""
    from fer3d_bench.dataset import H5Dataset

    variants = _variants(spec)
    with H5Dataset(spec.dataset) as data:
        fingerprint = data.fingerprint
    items = sp.items_from_h5(spec.dataset)
    run_dir = Path(spec.out)
    info = _run_info(spec, variants, fingerprint)
    manifests = {}
    for name in spec.protocols:
        protocol, manifest, path = _checked_manifest(name, spec, items)
        manifests[name] = (protocol, manifest, path)
        info["protocols"][name] = _protocol_entry(protocol, manifest, path, spec)
    info = _merge_run_info(run_dir / "run.json", info)
    jobs = [
        job
        for variant, config in variants.items()
        for protocol, manifest, path in manifests.values()
        for job in _fold_jobs(spec, run_dir, variant, config, protocol, manifest, path, info)
    ]
    for job in jobs:
        job.progress = progress
        _existing_result(job)  # refuses a folder that holds another configuration's result
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "run.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return Plan(run_dir, info, jobs)


def _variants(spec: EvalSpec) -> dict:
    """variant name -> TrainConfig: "full" (the preset with overrides), then each ablation."""
    from fer3d_bench.train.loop import ABLATIONS, PRESETS, with_overrides

    if spec.preset not in PRESETS:
        raise ConfigError(f"preset {spec.preset!r} is not one of {sorted(PRESETS)}")
    unknown = sorted(set(spec.ablations) - set(ABLATIONS))
    if unknown:
        raise ConfigError(f"unknown ablation(s) {unknown}; known: {sorted(ABLATIONS)}")
    base = with_overrides(PRESETS[spec.preset], **spec.overrides)
    return {"full": base} | {a: with_overrides(base, **ABLATIONS[a]) for a in spec.ablations}


def _run_info(spec: EvalSpec, variants: dict, fingerprint: str) -> dict:
    from fer3d_bench.train.loop import PRESETS, pick_device

    commit, dirty = git_commit()
    return {
        "schema": RUN_SCHEMA,
        "name": Path(spec.out).name,
        "dataset": {"path": str(spec.dataset), "fingerprint": fingerprint},
        "preset": spec.preset,
        "overrides": dict(sorted(spec.overrides.items())),
        "backbone_weights": _weights_identity(spec.backbone_weights),
        "exclude_flagged": spec.exclude_flagged,
        "reference": {
            "differs_from_paper": _differences(
                variants["full"].as_dict(), PRESETS["paper"].as_dict()
            )
        },
        "variants": {name: config.as_dict() for name, config in variants.items()},
        "protocols": {},
        "fer3d_bench_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        # a cluster job picks its device where it runs (each result.json records it)
        "device": pick_device(spec.device).type if spec.launcher == "local" else spec.device,
        "launcher": spec.launcher,
        "environment": environment(),
        "created": now(),
    }


def _weights_identity(path: Path | None) -> dict | None:
    """Pretrained weights change every result: their sha256 is part of each job's identity."""
    if path is None:
        return None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"file": Path(path).name, "sha256": digest}


def _protocol_entry(protocol: sp.Protocol, manifest: sp.Manifest, path: Path, spec) -> dict:
    total_reps = len(manifest.content["repetitions"])
    total_folds = protocol.folds if protocol.kind == "kfold" else 1
    return {
        "version": protocol.version,
        "kind": protocol.kind,
        "manifest": str(path),
        "manifest_sha256": manifest.sha256,
        "classes": list(protocol.classes),
        "seed": protocol.seed,
        "repetitions_total": total_reps,
        "folds_total": total_folds,
        "repetitions_run": min(total_reps, spec.repetitions or total_reps),
        "folds_run": min(total_folds, spec.max_folds or total_folds),
    }


def _fold_jobs(spec, run_dir, variant, config, protocol, manifest, path, info) -> list[FoldJob]:
    entry = info["protocols"][protocol.name]
    config_dict = config.as_dict()
    prefix = "" if variant == "full" else f"ablation-{variant}/"
    jobs = []
    for rep in range(min(entry["repetitions_total"], spec.repetitions or 10**9)):
        for fold in range(min(entry["folds_total"], spec.max_folds or 10**9)):
            identity = {
                "variant": variant,
                "protocol": protocol.name,
                "protocol_version": protocol.version,
                "manifest_sha256": manifest.sha256,
                "repetition": rep,
                "fold": fold,
                "dataset_fingerprint": info["dataset"]["fingerprint"],
                "config": config_dict,
                "config_sha256": _sha(config_dict),
                "seed": config.seed,
                "backbone_weights": info["backbone_weights"],
            }
            if spec.exclude_flagged:  # absent otherwise: jobs of earlier versions stay valid
                identity["exclude_flagged"] = True
            jobs.append(
                FoldJob(
                    run_dir=str(run_dir.resolve()),
                    folder=f"{prefix}{protocol.name}/{rep}/{fold}",
                    dataset=str(Path(spec.dataset).resolve()),
                    manifest=str(Path(path).resolve()),
                    identity=identity,
                    classes=list(protocol.classes),
                    device=spec.device,
                    backbone_weights=str(spec.backbone_weights) if spec.backbone_weights else None,
                    trust_pickle=spec.trust_pickle,
                    exclude_flagged=spec.exclude_flagged,
                )
            )
    return jobs


def _checked_manifest(name: str, spec: EvalSpec, items: list[sp.Item]):
    protocol = sp.load_protocol(name)
    path = Path(spec.manifests) / protocol.name / f"{protocol.version}.json"
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
            f"{path} does not match {spec.dataset} (as `fer3d-bench splits verify --manifest "
            f"{path} --dataset {spec.dataset}` reports):\n  {details}\n"
            "Evaluate against the manifest the dataset was meant for (--manifests DIR), or "
            "generate one for this dataset with `fer3d-bench splits generate`."
        )
    return protocol, manifest, path


def _merge_run_info(path: Path, new: dict) -> dict:
    """run.json of a folder that may hold an earlier call; refuses another configuration."""
    if not path.exists():
        return new
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise Fer3dError(f"{path}: not valid JSON ({exc}); move the run folder away") from None
    if old.get("schema") != RUN_SCHEMA:
        raise Fer3dError(f"{path}: not a fer3d-bench run (schema {old.get('schema')!r})")
    folder = path.parent
    if old["dataset"]["fingerprint"] != new["dataset"]["fingerprint"]:
        raise ConfigError(
            f"{folder} holds results for another dataset (fingerprint "
            f"{old['dataset']['fingerprint'][:12]}..., this one "
            f"{new['dataset']['fingerprint'][:12]}...); choose another --out"
        )
    if old.get("exclude_flagged", False) != new["exclude_flagged"]:
        kept = "without" if old.get("exclude_flagged") else "with"
        raise ConfigError(
            f"{folder} holds results trained {kept} the samples flagged low-quality; choose "
            "another --out, or make the same --exclude-flagged choice as before"
        )
    if old.get("backbone_weights") != new["backbone_weights"]:
        raise ConfigError(
            f"{folder} holds results trained from other pretrained weights "
            f"({old.get('backbone_weights')}); choose another --out"
        )
    for variant, config in new["variants"].items():
        if variant in old["variants"] and old["variants"][variant] != config:
            keys = _changed(old["variants"][variant], config)
            raise ConfigError(
                f"{folder} holds results of a different configuration for {variant!r} "
                f"(differs in {', '.join(keys)}); choose another --out, or give the same "
                "--preset/--config/--epochs as before"
            )
    for name, spec in new["protocols"].items():
        before = old["protocols"].get(name)
        if before and before["manifest_sha256"] != spec["manifest_sha256"]:
            raise ConfigError(
                f"{folder} holds {name} results for another manifest (sha256 "
                f"{before['manifest_sha256'][:12]}...); choose another --out"
            )
        if before:
            for key in ("repetitions_run", "folds_run"):
                spec[key] = max(spec[key], before[key])
    merged = {**new, **old}  # what was recorded first stays; keys new in this version join
    merged["variants"] = {**old["variants"], **new["variants"]}
    merged["protocols"] = {**old["protocols"], **new["protocols"]}
    if (new["git_commit"], new["fer3d_bench_version"]) != (
        old["git_commit"],
        old["fer3d_bench_version"],
    ):
        merged.setdefault("resumed_with", [])
        keys = ("fer3d_bench_version", "git_commit", "device", "launcher", "created")
        entry = {k: new[k] for k in keys}
        if entry not in merged["resumed_with"]:
            merged["resumed_with"].append(entry)
    return merged


_ABSENT = "(absent)"


def _differences(old: dict, new: dict) -> dict[str, list]:
    """Dotted key -> [old, new] for every nested value that differs or exists on one side only."""
    a, b = _flatten(old), _flatten(new)
    pairs = {k: [a.get(k, _ABSENT), b.get(k, _ABSENT)] for k in sorted(a.keys() | b.keys())}
    return {k: pair for k, pair in pairs.items() if pair[0] != pair[1]}


def _flatten(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _changed(old: dict, new: dict) -> list[str]:
    return [f"{key} {a!r} -> {b!r}" for key, (a, b) in _differences(old, new).items()]


def _existing_result(job: FoldJob) -> dict | None:
    """The finished result of this job, None if there is none; another job's result is refused."""
    path = job.result_path
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise Fer3dError(f"{path}: damaged result (not valid JSON); delete it to rerun") from None
    if data.get("job") != job.identity:
        keys = _changed(data.get("job") or {}, job.identity)
        raise ConfigError(
            f"{path} holds the result of a different job (differs in {', '.join(keys[:5])}); "
            "choose another --out"
        )
    return data


def run_fold(job: FoldJob) -> dict:
    """Train and test one fold; write its result.json. A diverging fold is recorded as failed."""
    done = _existing_result(job)
    if done is not None:
        return _summary(job, done, skipped=True)
    import torch

    from fer3d_bench.dataset import H5Dataset
    from fer3d_bench.train.loop import config_from_dict, pick_device, train

    if job.threads:
        torch.set_num_threads(job.threads)
    folder = Path(job.run_dir) / job.folder
    identity = job.identity
    manifest = sp.read_manifest(Path(job.manifest))
    with H5Dataset(job.dataset) as data:
        if data.fingerprint != identity["dataset_fingerprint"]:
            raise Fer3dError(f"{job.dataset} changed since the run was planned (fingerprint)")
        train_idx, test_idx = sp.fold_indices(
            manifest, data, identity["repetition"], identity["fold"]
        )
        truth = {data.sample_ids[i]: data.classes[int(data.labels[i])] for i in test_idx}
        names = list(data.classes)
    started, clock = now(), time.perf_counter()
    status, reason, predictions, history, left_out = "ok", None, {}, [], []
    empty = [name for name, idx in (("training", train_idx), ("test", test_idx)) if not len(idx)]
    if empty:  # too few subjects for this many folds: nothing to train or test on
        status, reason = "failed", f"the fold has no {' and no '.join(empty)} samples"
    else:
        try:
            outcome = train(
                Path(job.dataset),
                train_idx,
                test_idx,
                folder,
                config_from_dict(identity["config"]),
                device=job.device,
                backbone_weights=Path(job.backbone_weights) if job.backbone_weights else None,
                trust_pickle=job.trust_pickle,
                progress=job.progress,
                classes=job.classes,
                exclude_flagged=job.exclude_flagged,
            )
            history, left_out = outcome.history, outcome.left_out
            predictions = {
                sid: {"true": truth[sid], "pred": names[k]}
                for sid, k in sorted(outcome.predictions.items())
            }
        except FloatingPointError as exc:  # diverged: this fold fails, the others go on
            status, reason = "failed", f"training diverged: {exc}"
            history = _read_history(folder / "metrics.jsonl")
    metrics = None
    if status == "ok":
        ids = sorted(predictions)
        true = [predictions[s]["true"] for s in ids]
        metrics = fold_metrics(true, [predictions[s]["pred"] for s in ids], job.classes)
    result = {
        "schema": RESULT_SCHEMA,
        "job": identity,
        "status": status,
        "reason": reason,
        "classes": job.classes,
        "predictions": predictions,
        "metrics": metrics,
        "history": history,
        "training_left_out": left_out,  # flagged training samples not trained on
        "checkpoint": f"{job.folder}/checkpoint.pt",
        "device": pick_device(job.device).type,
        "seconds": round(time.perf_counter() - clock, 3),
        "started": started,
        "finished": now(),
        "fer3d_bench_version": __version__,
        "git_commit": git_commit()[0],
    }
    folder.mkdir(parents=True, exist_ok=True)  # an empty fold never reached the trainer
    with atomic_path(job.result_path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return _summary(job, result, skipped=False)


def summary_line(summary: dict) -> str:
    """One line per finished fold job, for the terminal."""
    if summary["status"] != "ok":
        return f"{summary['folder']}: FAILED ({summary['reason']})"
    done = "already done" if summary["skipped"] else "trained"
    return f"{summary['folder']}: accuracy {summary['accuracy']:.3f} ({done})"


def _summary(job: FoldJob, result: dict, skipped: bool) -> dict:
    metrics = result.get("metrics") or {}
    return {
        "folder": job.folder,
        "status": result["status"],
        "reason": result.get("reason"),
        "accuracy": metrics.get("accuracy"),
        "skipped": skipped,
    }


def _read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_local(
    jobs: list[FoldJob],
    workers: int = 1,
    progress: bool = True,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run jobs here: one after another, or in a pool of `workers` spawned processes."""
    from tqdm import tqdm

    summaries = []
    bar = tqdm(total=len(jobs), desc="folds", unit="fold", disable=not progress)
    if workers <= 1:
        for job in jobs:
            bar.set_postfix_str(job.folder)
            summaries.append(run_fold(job))
            _report_one(summaries[-1], on_result, bar)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // workers)
        for job in jobs:
            job.threads, job.progress = threads, False
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(run_fold, job) for job in jobs]
            for future in as_completed(futures):
                summaries.append(future.result())
                _report_one(summaries[-1], on_result, bar)
    bar.close()
    return sorted(summaries, key=lambda s: s["folder"])


def _report_one(summary: dict, on_result, bar) -> None:
    bar.update(1)
    if on_result is not None:
        with bar.external_write_mode():  # a line of its own, above the progress bars
            on_result(summary)


@dataclass
class SlurmOptions:
    partition: str | None = None
    timeout_min: int = 240
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    array_parallelism: int = 64


def submit(
    jobs: list[FoldJob],
    run_dir: Path,
    cluster: str = "slurm",
    options: SlurmOptions | None = None,
    wait: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Submit jobs as one submitit job array (`cluster` "slurm", or "local" to test the path).

    Job ids go to `run_dir/submitit/jobs.json`. With `wait`, returns each job's summary once all
    finished; a job that crashed (not one that diverged: that is a failed result) is reported by
    name and makes this raise after the others are collected.
    """
    import submitit

    options = options or SlurmOptions()
    folder = Path(run_dir) / "submitit"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    parameters = {
        "name": f"fer3d-{Path(run_dir).name}",
        "timeout_min": options.timeout_min,
        "cpus_per_task": options.cpus_per_task,
        "mem_gb": options.mem_gb,
        "slurm_array_parallelism": options.array_parallelism,
    }
    if cluster != "local":
        parameters["gpus_per_node"] = options.gpus_per_node
    if options.partition:
        parameters["slurm_partition"] = options.partition
    executor.update_parameters(**parameters)
    for job in jobs:
        job.progress = False
    submitted = executor.map_array(run_fold, jobs)
    pairs = zip(submitted, jobs, strict=True)
    record = [{"job_id": s.job_id, "folder": j.folder} for s, j in pairs]
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "jobs.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    if not wait:
        return []
    from tqdm import tqdm

    summaries, crashed = [], []
    for sub, job in tqdm(
        list(zip(submitted, jobs, strict=True)), desc="jobs", disable=not progress
    ):
        try:
            summaries.append(sub.result())
        except Exception as exc:  # noqa: BLE001 - submitit re-raises the job's own error
            crashed.append(f"{job.folder} (job {sub.job_id}): {str(exc).strip().splitlines()[-1]}")
    if crashed:
        raise Fer3dError(
            f"{len(crashed)} job(s) crashed; logs in {folder}:\n  " + "\n  ".join(crashed)
        )
    return summaries


def git_commit() -> tuple[str, bool]:
    """(commit of the source tree, whether it has uncommitted changes); 'unknown' outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, bool(dirty)


def environment() -> dict:
    import timm
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sha(values: dict) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
