"""A training folder's files: `checkpoint.pt` (everything a resumed run continues from) and
`metrics.jsonl` (one line per finished epoch).

Run folders are shared and copied from clusters, so a checkpoint is untrusted input: it holds
only tensors and plain containers and is read with `weights_only=True` (a pickle that would
build any other object is refused unread), and its layout is checked before any of it is used.
Both files are written atomically; `metrics.jsonl` follows the checkpoint's history.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fer3d_bench.io import atomic_path, inside
from fer3d_bench.records.io import RecordDamaged, read_jsonl
from fer3d_bench.records.result import renamed_history

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
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
    missing an entry, is reported as damaged.
    """
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
    wrong = [
        key
        for key, kind in _CHECKPOINT_KEYS.items()
        if not isinstance(saved, dict) or not isinstance(saved.get(key), kind)
    ]
    if wrong:
        raise RecordDamaged(path, f"not a fer3d-bench checkpoint (missing or wrong: {wrong})")
    history = saved["history"]
    if saved["epoch"] != len(history) or not all(isinstance(e, dict) for e in history):
        raise RecordDamaged(path, "its epoch count and its history disagree")
    return saved


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
    lines = [json.dumps(record, sort_keys=True) + "\n" for record in history]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def append_metrics(folder: Path, record: dict) -> None:
    """One finished epoch's line, appended to `folder`'s metrics.jsonl (never through a link
    out of the folder)."""
    with open(inside(folder, folder / METRICS), "a") as log:
        log.write(json.dumps(record, sort_keys=True) + "\n")
