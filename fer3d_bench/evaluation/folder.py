"""Run-folder compatibility: what a folder written by an earlier call may be resumed with.

A folder holds one dataset, one choice of flagged samples and pretrained weights, one
configuration per variant and one manifest per protocol; anything else is refused before a
single fold trains, with the keys that differ named. How each fold's reported epoch is chosen
(`epoch_selection`) is not among them: every fold records both the last epoch and the best-test
one, so a resumed call may change it, and its protocols' entries (with what a newer version
records of them: unit, manifest size) replace those recorded before.
"""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.errors import ConfigError
from fer3d_bench.records.io import read_json
from fer3d_bench.records.job import JobIdentity
from fer3d_bench.records.result import FoldResult, read_result
from fer3d_bench.records.run import RunInfo, flat_config

_ABSENT = "(absent)"


def merge_run_info(path: Path, new: RunInfo) -> RunInfo:
    """The run.json of a folder that may hold an earlier call; refuses another configuration.

    What was recorded first stays; keys new in this version join; each resume by another
    version or commit, or with other speed levers (`speed`: no part of the folds' identity, so
    a run may be resumed with others), is listed under `resumed_with`.
    """
    if not path.exists():
        return new
    raw = read_json(path, what="run.json (move the run folder away if it is damaged)")
    old = RunInfo.from_json(raw, path)
    folder = path.parent
    _refuse_other_run(folder, old, new)
    for name, entry in new.protocols.items():
        before = old.protocols.get(name)
        if before and before.manifest_sha256 != entry.manifest_sha256:
            raise ConfigError(
                f"{folder} holds {name} results for another manifest (sha256 "
                f"{before.manifest_sha256[:12]}...); choose another --out"
            )
        if before:
            entry.repetitions_run = max(entry.repetitions_run, before.repetitions_run)
            entry.folds_run = max(entry.folds_planned, before.folds_planned)
    fresh = new.to_json()
    merged = {**fresh, **raw}
    merged["variants"] = {**raw["variants"], **fresh["variants"]}
    merged["protocols"] = {**raw["protocols"], **fresh["protocols"]}
    other = (new.git_commit, new.fer3d_bench_version) != (old.git_commit, old.fer3d_bench_version)
    if other or fresh.get("speed") != raw.get("speed", fresh.get("speed")):
        merged.setdefault("resumed_with", [])
        keys = ("fer3d_bench_version", "git_commit", "device", "launcher", "speed", "created")
        entry = {k: fresh[k] for k in keys if k in fresh}
        if entry not in merged["resumed_with"]:
            merged["resumed_with"].append(entry)
    return RunInfo.from_json(merged, path)


def _refuse_other_run(folder: Path, old: RunInfo, new: RunInfo) -> None:
    if old.fingerprint != new.fingerprint:
        raise ConfigError(
            f"{folder} holds results for another dataset (fingerprint "
            f"{str(old.fingerprint)[:12]}..., this one {str(new.fingerprint)[:12]}...); "
            "choose another --out"
        )
    if old.exclude_flagged != new.exclude_flagged:
        kept = "without" if old.exclude_flagged else "with"
        raise ConfigError(
            f"{folder} holds results trained {kept} the samples flagged low-quality; choose "
            "another --out, or make the same --exclude-flagged choice as before"
        )
    ran, runs = (old.experiment or {}).get("name"), (new.experiment or {}).get("name")
    if ran and runs and ran != runs:
        raise ConfigError(f"{folder} holds experiment {ran!r}, not {runs!r}; choose another --out")
    if old.backbone_weights != new.backbone_weights:
        raise ConfigError(
            f"{folder} holds results trained from other pretrained weights "
            f"({old.backbone_weights}); choose another --out"
        )
    for variant, config in new.variants.items():
        if variant in old.variants and old.variants[variant] != config:
            keys = changed(old.variants[variant], config)
            raise ConfigError(
                f"{folder} holds results of a different configuration for {variant!r} "
                f"(differs in {', '.join(keys)}); choose another --out, or give the same "
                "--preset/--config/--epochs as before"
            )


def existing_result(path: Path, identity: JobIdentity) -> FoldResult | None:
    """The finished result of the job `identity`, None if there is none; another's is refused."""
    if not path.exists():
        return None
    result = read_result(path)
    if result.job != identity:
        keys = changed(result.job.to_json(), identity.to_json())
        raise ConfigError(
            f"{path} holds the result of a different job (differs in {', '.join(keys[:5])}); "
            "choose another --out"
        )
    return result


def differences(old: dict, new: dict) -> dict[str, list]:
    """Dotted key -> [old, new] for every nested value that differs or exists on one side only."""
    a, b = flat_config(old), flat_config(new)
    pairs = {k: [a.get(k, _ABSENT), b.get(k, _ABSENT)] for k in sorted(a.keys() | b.keys())}
    return {k: pair for k, pair in pairs.items() if pair[0] != pair[1]}


def changed(old: dict, new: dict) -> list[str]:
    return [f"{key} {a!r} -> {b!r}" for key, (a, b) in differences(old, new).items()]
