"""Run folders for the compare tests, written with the record classes as evaluate and score
write them: run.json and one result.json per fold, no training."""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.records.job import JobIdentity, fold_folder
from fer3d_bench.records.result import FAILED, OK, FoldResult, write_result
from fer3d_bench.records.run import ProtocolEntry, RunInfo, write_run_info

CLASSES = ["anger", "happiness"]
SHA = "a" * 64


def sample_id(subject: int, index: int) -> str:
    """A BU-3DFE sample id of subject `subject`, so that `sources.subject_of` knows it."""
    return f"bu3dfe:F{subject:04d}_AN{index:02d}"


def predictions(right: list[bool], subjects: list[int], per_subject: int) -> dict[str, dict]:
    """One fold's predictions: the test samples of `subjects`, `per_subject` each, in order;
    the n-th sample predicted right where right[n] is true."""
    ids = [sample_id(s, i) for s in subjects for i in range(per_subject)]
    assert len(ids) == len(right)
    return {
        sid: {"true": CLASSES[0], "pred": CLASSES[0] if ok else CLASSES[1]}
        for sid, ok in zip(ids, right, strict=True)
    }


def write_folder(
    path: Path,
    folds: dict[tuple[int, int], dict[str, dict]],
    *,
    protocol: str = "bu3dfe-legacy",
    kind: str = "kfold",
    manifest_sha256: str = SHA,
    manifest: str | None = None,
    samples: int | None = None,
    selection: str | None = None,
    best_test: dict[tuple[int, int], dict[str, dict]] | None = None,
    failed: tuple[tuple[int, int], ...] = (),
    variant: str = "full",
    submission: dict | None = None,
    classes: list[str] = CLASSES,
) -> Path:
    """A run folder of one protocol whose fold (repetition, fold) holds `folds[...]`; folds in
    `failed` are written as failed; `best_test` gives a fold's best-test-epoch predictions."""
    path.mkdir(parents=True)
    repetitions = 1 + max(rep for rep, _ in [*folds, *failed])
    per_repetition = 1 + max(fold for _, fold in [*folds, *failed])
    variants = {"full": {"epochs": 3}} | ({variant: {}} if variant != "full" else {})
    info = RunInfo(
        variants=variants,
        protocols={
            protocol: ProtocolEntry(
                version="1.0.0",
                kind=kind,
                repetitions_total=repetitions,
                folds_total=per_repetition,
                repetitions_run=repetitions,
                folds_run=per_repetition,
                manifest=manifest,
                manifest_sha256=manifest_sha256,
                classes=classes,
                unit="subject",
                epoch_selection=selection,
                samples=samples,
            )
        },
        name=path.name,
        submission=submission,
    )
    write_run_info(path / "run.json", info)
    for (rep, fold), given in [*folds.items(), *((p, None) for p in failed)]:
        job = JobIdentity(
            variant=variant,
            protocol=protocol,
            protocol_version="1.0.0",
            manifest_sha256=manifest_sha256,
            repetition=rep,
            fold=fold,
            dataset_fingerprint=None,
            config_sha256="c" * 64,
        )
        best = (best_test or {}).get((rep, fold))
        result = FoldResult(
            job=job,
            status=OK if given else FAILED,
            classes=classes,
            predictions=given or {},
            reason=None if given else "loss became nan",
            best_test=None if best is None else {"epoch": 2, "accuracy": 0.5, "predictions": best},
        )
        folder = path / fold_folder(variant, protocol, rep, fold)
        folder.mkdir(parents=True)
        write_result(folder / "result.json", result)
    return path
