"""result.json: one fold job's outcome, with every test sample's prediction.

Written by the fold job, read by the report (and by a resumed run, to skip finished jobs). The
`job` block is the job's identity: equal blocks mean the same job. Every metric a report shows
is recomputed from `predictions`; `metrics` is the job's own summary, kept for a quick look.
`embeddings` names the file of the test samples' embeddings (`records.embeddings`), where the
fold finished and its version stored them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from fer3d_bench.records.io import (
    Fields,
    SchemaMismatch,
    dict_of,
    is_number,
    is_str,
    read_json,
    write_json,
)
from fer3d_bench.records.job import JobIdentity

RESULT_SCHEMA = "fer3d-bench/result/1"
OK, FAILED = "ok", "failed"
CONSISTENT = ("config_sha256", "manifest_sha256", "dataset_fingerprint")  # within a group
RENAMED_HISTORY = {"val_accuracy": "test_accuracy"}  # the test fold was called "val" up to 0.7


@dataclass
class FoldResult:
    job: JobIdentity
    status: str
    classes: list[str]
    predictions: dict[str, dict] = field(default_factory=dict)  # id -> {"true", "pred"}
    embeddings: dict | None = None  # embeddings.npy beside it (records.embeddings), if stored
    reason: str | None = None
    metrics: dict | None = None
    history: list[dict] = field(default_factory=list)  # one record per epoch
    training_left_out: list[str] = field(default_factory=list)  # flagged, not trained on
    weights: dict | None = None  # the pretrained weights (weights.known.weights_record)
    checkpoint: str | None = None
    device: str | None = None
    threads: int | None = None  # torch threads it trained with: its share of its allocation
    seconds: float | None = None
    started: str | None = None
    finished: str | None = None
    fer3d_bench_version: str | None = None
    git_commit: str | None = None
    # the epoch with the best test accuracy, for `--epoch-selection best-test` (optimistic: the
    # test fold chooses it): {"epoch": 1-based, "accuracy", "predictions": like `predictions`};
    # None where the fold did not record it (before 0.16, or a scored submission)
    best_test: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return self.job.variant

    @property
    def protocol(self) -> str:
        return self.job.protocol

    @property
    def position(self) -> tuple[int, int]:
        """(repetition, fold)."""
        return self.job.position

    @property
    def ok(self) -> bool:
        return self.status == OK

    def selected(self, selection: str) -> dict[str, dict] | None:
        """The predictions of the epoch `selection` chooses: "last" (the fold's final epoch) or
        "best-test" (the epoch of best test accuracy; None where it was not recorded)."""
        if selection == "last":
            return self.predictions
        return None if self.best_test is None else self.best_test["predictions"]

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if self.best_test is None:  # absent, as before it existed
            del data["best_test"]
        return {**self.extra, **data, "job": self.job.to_json(), "schema": RESULT_SCHEMA}

    @classmethod
    def from_json(cls, data: object, path: Path) -> FoldResult:
        """The typed result.json, each field its readers rely on checked (`Fields`)."""
        read = Fields(path, data)
        if read.data.get("schema") != RESULT_SCHEMA:
            raise SchemaMismatch(
                path, f"expected schema {RESULT_SCHEMA!r}, found {read.data.get('schema')!r}"
            )
        job = JobIdentity.from_json(read.data.get("job"), path)
        status = read.string("status", choices=(OK, FAILED))
        classes = read.array("classes", is_str, "class names")
        predictions = read.object("predictions", null=True, optional=True) or {}
        if status == OK and not predictions:
            raise SchemaMismatch(path, "status ok but no predictions")
        for sample, given in predictions.items():
            entry = Fields(path, given, read.at(f"predictions.{sample}"))
            entry.string("true")
            entry.string("pred")
            entry.get("scores", dict_of(is_number), "an object of numbers", optional=True)
        some = {"null": True, "optional": True}
        history = read.array("history", _epoch, "epochs, each an object of numbers", **some)
        return cls(
            job=job,
            status=status,
            classes=classes,
            predictions=predictions,
            embeddings=read.object("embeddings", **some),
            reason=read.string("reason", **some),
            metrics=read.object("metrics", **some),
            history=[renamed_history(e) for e in history or []],
            training_left_out=read.array("training_left_out", is_str, "sample ids", **some) or [],
            weights=read.object("weights", **some),
            checkpoint=read.string("checkpoint", **some),
            device=read.string("device", **some),
            threads=read.integer("threads", min=1, **some),
            seconds=read.number("seconds", **some),
            started=read.string("started", **some),
            finished=read.string("finished", **some),
            fer3d_bench_version=read.string("fer3d_bench_version", **some),
            git_commit=read.string("git_commit", **some),
            best_test=_best_test(read),
            extra=read.extra(cls, also=("schema",)),
        )


def _best_test(read: Fields) -> dict | None:
    inner = read.nested("best_test", null=True)
    if inner is None:
        return None
    inner.integer("epoch", min=1)
    inner.number("accuracy")
    for sample, given in inner.object("predictions").items():
        entry = Fields(read.path, given, inner.at(f"predictions.{sample}"))
        entry.string("true")
        entry.string("pred")
    return inner.data


def _epoch(record: object) -> bool:
    """An epoch of the history: numbers, or null for one that was not finite."""
    return isinstance(record, dict) and all(v is None or is_number(v) for v in record.values())


def renamed_history(epoch: dict) -> dict:
    """An epoch record with the keys of earlier versions under their present names, and each
    null (a non-finite number, as JSON writes it since 0.14) back to NaN."""
    return {
        RENAMED_HISTORY.get(key, key): math.nan if value is None else value
        for key, value in epoch.items()
    }


def read_result(path: Path) -> FoldResult:
    path = Path(path)
    return FoldResult.from_json(read_json(path, what="fold result"), path)


def write_result(path: Path, result: FoldResult) -> Path:
    return write_json(path, result.to_json())
