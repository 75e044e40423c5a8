"""embeddings.npy: a fold's test embeddings, beside its result.json, for the report's t-SNE.

One row per test sample in sorted sample-id order (the order of result.json's `predictions`),
float16 to stay small, written atomically; result.json's `embeddings` block names the file and
records its sha256, shape and dtype. Run folders come from other people, so the reader takes
none of it on trust: the file must lie inside the fold's folder (no `..`, no link out), hold
exactly the recorded bytes, and be a plain float16 array of the recorded shape with one row per
prediction. It is read with `allow_pickle=False`: nothing in it is ever unpickled. Every
refusal names the file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fer3d_bench.io import OutsideFolder, atomic_path, inside
from fer3d_bench.records.io import RecordDamaged, RecordNotFound, SchemaMismatch, record_file
from fer3d_bench.records.result import FoldResult

EMBEDDINGS = "embeddings.npy"
DTYPE = "float16"
ORDER = "sorted sample ids"
_HEADER_BYTES = 4096  # the most a .npy header may add to the rows' bytes (NumPy writes 128)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def write_embeddings(folder: Path, by_sample: dict[str, np.ndarray]) -> dict:
    """Sample id -> embedding, as `folder`/embeddings.npy (atomically); result.json's block."""
    folder = Path(folder)
    rows = [np.asarray(by_sample[sample]) for sample in sorted(by_sample)]
    matrix = np.ascontiguousarray(np.stack(rows), dtype=np.float16)
    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    content = buffer.getvalue()
    with atomic_path(inside(folder, folder / EMBEDDINGS)) as tmp:
        tmp.write_bytes(content)
    return {
        "file": EMBEDDINGS,
        "sha256": hashlib.sha256(content).hexdigest(),
        "shape": list(matrix.shape),
        "dtype": DTYPE,
        "order": ORDER,
    }


def first_embedded(results: Iterable[FoldResult]) -> FoldResult | None:
    """The finished fold with stored embeddings whose (repetition, fold) is smallest, or None.

    Folds written by versions that stored no embeddings (0.10 and earlier) are passed over.
    """
    stored = [r for r in results if r.ok and r.embeddings]
    return min(stored, key=lambda r: r.position, default=None)


def read_embeddings(result: FoldResult, result_path: Path) -> np.ndarray:
    """The (n, D) float16 embeddings `result` names, rows in sorted sample-id order, checked."""
    result_path = Path(result_path)
    record = _checked_block(result, result_path)
    path = _embeddings_path(result_path, record["file"])
    if not path.exists():
        raise RecordNotFound(path, f"embeddings not found (named by {result_path})")
    rows, dims = record["shape"]
    largest = rows * dims * 2 + _HEADER_BYTES
    record_file(path, what=f"embeddings file (float16 {record['shape']})", max_bytes=largest)
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != record["sha256"]:
        raise RecordDamaged(
            path, f"its sha256 differs from the one {result_path} records: changed since written"
        )
    return _checked_array(content, path, record["shape"])


def _checked_block(result: FoldResult, result_path: Path) -> dict:
    """result.json's `embeddings` block, refused unless it has the form `write_embeddings` gives."""
    record = result.embeddings
    if not isinstance(record, dict):
        raise SchemaMismatch(result_path, "records no embeddings")
    shape = record.get("shape")
    problems = [
        not isinstance(record.get("file"), str) or not record["file"],
        not isinstance(record.get("sha256"), str) or not _SHA256.fullmatch(record["sha256"]),
        not isinstance(shape, list) or len(shape) != 2,
        isinstance(shape, list) and not all(type(v) is int and v >= 0 for v in shape),
        record.get("dtype") != DTYPE,
        record.get("order") != ORDER,
    ]
    if any(problems):
        raise SchemaMismatch(
            result_path,
            "its 'embeddings' block needs 'file', a sha256, a 2-number 'shape', "
            f"dtype {DTYPE!r} and order {ORDER!r}",
        )
    if shape[0] != len(result.predictions):
        raise SchemaMismatch(
            result_path,
            f"its embeddings have {shape[0]} rows for {len(result.predictions)} predictions",
        )
    return record


def _embeddings_path(result_path: Path, name: str) -> Path:
    """The fold folder's file `name`, refused if it (or a link on the way) leads out of it."""
    folder = result_path.parent
    try:
        return inside(folder, folder / name)
    except OutsideFolder:
        raise SchemaMismatch(
            result_path, f"its embeddings file {name!r} lies outside the fold folder {folder}"
        ) from None


def _checked_array(content: bytes, path: Path, shape: list[int]) -> np.ndarray:
    """The .npy bytes as an array, loaded without pickle, of the recorded dtype and shape."""
    try:
        array = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        problem = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise RecordDamaged(path, f"not a plain .npy array ({problem})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise RecordDamaged(path, "not a plain .npy array (an archive)")
    if array.dtype != np.dtype(DTYPE) or list(array.shape) != shape:
        raise RecordDamaged(
            path, f"holds {array.dtype} {list(array.shape)}, not the recorded {DTYPE} {shape}"
        )
    if not np.isfinite(array).all():
        raise RecordDamaged(path, "holds values that are not finite")
    return array
