"""A training folder's files: `checkpoint.pt` (everything a resumed run continues from) and
`metrics.jsonl` (one line per finished epoch).

Run folders are shared and copied from clusters, so a checkpoint is untrusted input: it holds
only tensors and plain containers and is read with `weights_only=True` (a pickle that would
build any other object is refused unread), and its layout is checked before any of it is used.
Both files are written atomically; `metrics.jsonl` follows the checkpoint's history.

Since 0.16 a checkpoint also holds `best_test`: the first epoch of the best test accuracy so far,
`{"epoch", "accuracy", "predictions": {sample id: dataset class index}}` (None before the first
epoch); a resumed run continues from it, so that it ends with the same record as one that ran
through. A checkpoint of an earlier version lacks it: `explain` reads it all the same.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fer3d_bench.io import atomic_path, inside
from fer3d_bench.records.io import RecordDamaged, json_line, read_jsonl, record_file, shown
from fer3d_bench.records.result import renamed_history

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# The largest checkpoint read: it holds two backbones, the head and AdamW's two moments, about
# 12 bytes a parameter (the paper's two EfficientNet-B2: ~0.2 GiB); 8 GiB is a model of some
# 350 million parameters a backbone, beyond any that trains here. Above it a file is refused
# unread, as is anything but a regular file (a FIFO would block the reader forever).
MAX_CHECKPOINT_BYTES = 8 * 2**30
# what a checkpoint holds, and the type each entry must have before any of it is used
_CHECKPOINT_KEYS = {
    "model": dict,
    "criterion": dict,
    "optimizer": dict,
    "centers_optimizer": dict,
    "scheduler": dict,
    "rng": torch.Tensor,
    "epoch": int,
    "history": list,
    "signature": dict,
    "normalisation": dict,
}


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's content, read without running anything it holds; its layout checked.

    Errors name the file: one that would build objects other than tensors and plain containers
    (a crafted pickle) is refused without being loaded; a truncated or damaged one, or one
    missing an entry or holding one of another type, is reported as damaged, naming the entry.
    """
    path = Path(path)
    record_file(path, what="checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in problem.lower():
            raise RecordDamaged(
                path,
                "holds objects other than tensors and plain containers, so it was not loaded "
                "(loading it could run code); delete it to train this fold from scratch",
            ) from None
        raise RecordDamaged(
            path, f"damaged or truncated checkpoint ({problem}); delete it to train again"
        ) from None
    problem = _layout_problem(saved)
    if problem:
        raise RecordDamaged(
            path, f"not a fer3d-bench checkpoint: {problem}; delete it to train again"
        )
    return saved


def _layout_problem(saved: object) -> str | None:
    """What is wrong with a loaded checkpoint's layout, or None: every entry a resumed run or
    `explain` uses is there, of the type it is used as."""
    if not isinstance(saved, dict):
        return f"it holds {type(saved).__name__}, not a dict of entries"
    wrong = [key for key, kind in _CHECKPOINT_KEYS.items() if not isinstance(saved.get(key), kind)]
    if wrong:
        return f"missing or wrong: {wrong}"
    for key in ("model", "criterion"):
        if not all(isinstance(k, str) and _is_tensor(v) for k, v in saved[key].items()):
            return f"'{key}' is not a dict of tensors"
    for key in ("optimizer", "centers_optimizer"):
        state, groups = saved[key].get("state"), saved[key].get("param_groups")
        if not isinstance(state, dict) or not isinstance(groups, list):
            return f"'{key}' lacks its 'state' dict or its 'param_groups' list"
        if not all(isinstance(s, dict) and all(map(_held, s.values())) for s in state.values()):
            return f"'{key}' state is not dicts of tensors"
        if not all(isinstance(g, dict) for g in groups):
            return f"'{key}' param_groups are not dicts"
    if saved["rng"].dtype != torch.uint8:
        return "'rng' is not a byte tensor"
    epoch, history = saved["epoch"], saved["history"]
    if isinstance(epoch, bool) or epoch < 0:
        return f"'epoch' must be a whole number >= 0, not {epoch!r}"
    if not all(isinstance(e, dict) and all(map(_is_number, e.values())) for e in history):
        return "'history' is not a list of epochs of numbers"
    if epoch != len(history):
        return f"its epoch count ({epoch}) and its history ({len(history)} epochs) disagree"
    problem = _best_test_problem(saved.get("best_test"), history) if "best_test" in saved else None
    if problem:
        return problem
    norm = saved["normalisation"]
    if not (
        all(_numbers(norm.get(k), 3) for k in ("rgb_mean", "rgb_std"))
        and all(_is_number(norm.get(k)) for k in ("depth_mean", "depth_std"))
    ):
        return "'normalisation' needs rgb_mean and rgb_std (3 numbers each), depth_mean, depth_std"
    return None


def _best_test_problem(best: object, history: list[dict]) -> str | None:
    """What is wrong with a checkpoint's best-test record, or None: None before any epoch,
    else the first epoch of the history's best test accuracy, with predictions of sample ids
    (strings) to class indices (whole numbers >= 0). Whether they are this fold's test samples
    only the resumed run can tell (`train.setup.resume`)."""
    if best is None:
        return "'best_test' is missing for its epochs" if history else None
    if not isinstance(best, dict) or set(best) != {"epoch", "accuracy", "predictions"}:
        return "'best_test' is not a table of epoch, accuracy and predictions"
    epoch, accuracy, predictions = best["epoch"], best["accuracy"], best["predictions"]
    if not _whole(epoch) or not 1 <= epoch <= len(history):
        return f"'best_test' epoch {shown(epoch)} is not one of its {len(history)} epochs"
    if not isinstance(predictions, dict) or not predictions:
        return "'best_test' predictions are not a table of samples"
    if not all(isinstance(k, str) and _whole(v) and v >= 0 for k, v in predictions.items()):
        return "'best_test' predictions are not sample ids with class indices"
    scores = [e.get("test_accuracy") for e in history]
    if not all(map(_is_number, scores)):
        return "'history' lacks a test accuracy of an epoch"
    first = scores.index(max(scores)) + 1
    if not _is_number(accuracy) or (epoch, accuracy) != (first, scores[first - 1]):
        return (
            f"'best_test' (epoch {shown(epoch)}, accuracy {shown(accuracy)}) is not the first "
            f"epoch of its history's best test accuracy (epoch {first}, {scores[first - 1]})"
        )
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor)


def _held(value: object) -> bool:
    """An optimiser's state for a parameter: tensors (SGD may keep a momentum buffer of None)."""
    return value is None or isinstance(value, torch.Tensor)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(value: object, count: int) -> bool:
    return isinstance(value, list | tuple) and len(value) == count and all(map(_is_number, value))


def write_checkpoint(path: Path, state: dict) -> None:
    """`state` (the entries `read_checkpoint` checks) to `path`, atomically."""
    missing = sorted(set(_CHECKPOINT_KEYS) - set(state))
    if missing:
        raise ValueError(f"a checkpoint needs {missing}")
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def rewrite_metrics(path: Path, history: list[dict]) -> None:
    """metrics.jsonl as the checkpoint's history says: one line per finished epoch.

    A kill between an epoch's metrics line and its checkpoint leaves a line the resumed run
    would log again; the checkpoint is what the run continues from, so it decides.
    """
    if not history and not path.exists():
        return
    try:
        if path.exists() and [renamed_history(r) for r in read_jsonl(path)] == history:
            return  # as it should be: leave the file (and its bytes) alone
    except RecordDamaged:  # a line cut short by the kill: rewritten below
        pass
    lines = [json_line(record) for record in history]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def append_metrics(folder: Path, record: dict) -> None:
    """One finished epoch's line, appended to `folder`'s metrics.jsonl (never through a link
    out of the folder)."""
    with open(inside(folder, folder / METRICS), "a") as log:
        log.write(json_line(record))
