"""Per-sample predictions, the one format `evaluate` writes and `fer3d-bench score` reads.

A CSV with a header, or JSON (a list of objects, or an object whose "predictions" is one):
`repetition`, `fold`, `sample_id`, `predicted` (a class name) on every row; optionally
`protocol` and `variant` (a file of several, as evaluate's `predictions.csv`), and `score:CLASS`
columns (CSV) or a "scores" object (JSON) of any numbers the model gave each class. Rows are
numbered as a person finds them: CSV by line (the header is line 1), JSON from 1.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.errors import FileError
from fer3d_bench.io import atomic_path, regular_file

REQUIRED = ("repetition", "fold", "sample_id", "predicted")
# The largest file read: every test sample of bu3dfe-legacy's 100 x 10 folds is 250,000 rows of
# ~100 bytes, 25 MiB, or a few times that with a score per class; no real file comes near.
MAX_BYTES = 512 * 2**20
SCORE = "score:"


class PredictionsError(FileError):
    """A predictions file that cannot be scored: "PATH: row N: problem"."""


@dataclass(frozen=True)
class Prediction:
    row: int  # the CSV line or the JSON entry (1-based), for messages
    repetition: int
    fold: int
    sample_id: str
    predicted: str
    protocol: str | None = None
    variant: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"row {self.row}"


def read_predictions(path: Path | str) -> list[Prediction]:
    """Every row of a CSV or JSON predictions file; a malformed row is named.

    The text is UTF-8, with or without the byte-order mark Excel writes first ("CSV UTF-8").
    """
    path = Path(path)
    try:
        regular_file(path, what="predictions file", max_bytes=MAX_BYTES)
    except FileError as error:
        raise PredictionsError(path, error.problem) from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionsError(path, f"cannot be read ({error})") from None
    if path.suffix.lower() == ".json":
        entries = _json_entries(path, text)
    else:
        entries = _csv_entries(path, text)
    return [_prediction(path, row, entry) for row, entry in entries]


def _csv_entries(path: Path, text: str) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames or []
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:  # a row as a dict keeps one of them: the other would be dropped unseen
            raise PredictionsError(path, f"the header names column {twice[0]!r} twice")
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise PredictionsError(path, f"the header lacks {missing} (it needs {list(REQUIRED)})")
        entries = []
        for entry in reader:
            scores = {k[len(SCORE) :]: v for k, v in entry.items() if k and k.startswith(SCORE)}
            values = {k: v for k, v in entry.items() if k and not k.startswith(SCORE)}
            entries.append(
                (reader.line_num, {**values, "scores": {k: v for k, v in scores.items() if v}})
            )
    except csv.Error as error:  # a field beyond the csv module's size limit, a stray quote...
        raise PredictionsError(path, f"line {reader.line_num}: not CSV ({error})") from None
    return entries


def _json_entries(path: Path, text: str) -> list[tuple[int, dict]]:
    try:
        data = json.loads(text)
    except RecursionError:
        raise PredictionsError(path, "is not predictions: JSON nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, or an integer of more digits than Python reads
        raise PredictionsError(path, f"is not JSON ({error})") from None
    if isinstance(data, dict):
        data = data.get("predictions")
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise PredictionsError(
            path, "must be a list of objects, or an object with one as 'predictions'"
        )
    return list(enumerate(data, 1))


def _prediction(path: Path, row: int, entry: dict) -> Prediction:
    def fail(problem: str):
        raise PredictionsError(path, f"row {row}: {problem}")

    missing = [c for c in REQUIRED if entry.get(c) in (None, "")]
    if missing:
        fail(f"no {', '.join(missing)}")
    repetition, fold = _whole(entry["repetition"]), _whole(entry["fold"])
    if repetition is None or fold is None:
        fail(
            "repetition and fold must be whole numbers, not "
            f"{entry['repetition']!r}, {entry['fold']!r}"
        )
    scores = entry.get("scores") or {}
    if not isinstance(scores, dict):
        fail("scores must be an object of class -> number")
    try:
        scores = {str(k): float(v) for k, v in scores.items()}
    except (TypeError, ValueError, OverflowError):
        fail("every score must be a number")
    if not all(math.isfinite(v) for v in scores.values()):
        fail("every score must be a finite number")
    return Prediction(
        row=row,
        repetition=repetition,
        fold=fold,
        sample_id=str(entry["sample_id"]),
        predicted=str(entry["predicted"]),
        protocol=entry.get("protocol") or None,
        variant=entry.get("variant") or None,
        scores=scores,
    )


def _whole(value: object) -> int | None:
    """A repetition or fold as written: a whole number (JSON), or its digits (CSV); else None
    (`int` would take 1.5 for 1, and raise on infinity or a 5,000-digit string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # 1.0, as some JSON writers put it
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal() and len(value) < 10:
        return int(value)
    return None


def write_predictions(path: Path, rows: list[Prediction]) -> Path:
    """A predictions CSV (protocol and variant columns when any row has them), atomically."""
    grouped = any(r.protocol for r in rows)
    header = (["protocol", "variant"] if grouped else []) + list(REQUIRED)
    classes = sorted({c for r in rows for c in r.scores})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header + [SCORE + c for c in classes])
    for r in rows:
        lead = [r.protocol or "", r.variant or ""] if grouped else []
        scores = [r.scores.get(c, "") for c in classes]
        writer.writerow(lead + [r.repetition, r.fold, r.sample_id, r.predicted] + scores)
    with atomic_path(path) as tmp:
        tmp.write_text(out.getvalue(), encoding="utf-8")
    return path
