"""result.json: one fold job's outcome, with every test sample's prediction.

Written by the fold job, read by the report (and by a resumed run, to skip finished jobs). The
`job` block is the job's identity: equal blocks mean the same job. Every metric a report shows
is recomputed from `predictions`; `metrics` is the job's own summary, kept for a quick look.
`embeddings` names the file of the test samples' embeddings (`records.embeddings`), where the
fold finished and its version stored them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from fer3d_bench.records.io import SchemaMismatch, read_json, write_json
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

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **data, "job": self.job.to_json(), "schema": RESULT_SCHEMA}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> FoldResult:
        if data.get("schema") != RESULT_SCHEMA:
            raise SchemaMismatch(
                path, f"expected schema {RESULT_SCHEMA!r}, found {data.get('schema')!r}"
            )
        job = JobIdentity.from_json(data.get("job"), path)
        if data.get("status") not in (OK, FAILED) or not isinstance(data.get("classes"), list):
            raise SchemaMismatch(path, "needs 'status' ok/failed and a 'classes' list")
        if data["status"] == OK and not data.get("predictions"):
            raise SchemaMismatch(path, "status ok but no predictions")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        values["job"] = job
        values["history"] = [renamed_history(e) for e in data.get("history") or []]
        values["extra"] = {k: v for k, v in data.items() if k not in known and k != "schema"}
        return cls(**values)


def renamed_history(epoch: dict) -> dict:
    """An epoch record with the keys of earlier versions under their present names."""
    return {RENAMED_HISTORY.get(key, key): value for key, value in epoch.items()}


def read_result(path: Path) -> FoldResult:
    path = Path(path)
    return FoldResult.from_json(read_json(path, what="fold result"), path)


def write_result(path: Path, result: FoldResult) -> Path:
    return write_json(path, result.to_json())
