"""Write a complete fake copy of all three datasets, atomically and reproducibly.

Every scan is one independent task seeded from (seed, dataset, scan name), so the bytes written
do not depend on the order tasks run in or on the number of worker processes. The few scans
misaligned on purpose are chosen before any task runs, from the configuration alone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fer3d_bench.io import NO_SPACE, full, output_folder
from fer3d_bench.processes import exit_with_parent
from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.synthetic import bosphorus, bu3dfe, cald3r_mend3s
from fer3d_bench.synthetic.common import Options, write_text
from fer3d_bench.synthetic.face import CLASSES

PIXEL_CONVENTION = "pixel (row i, col j) is centred at image coordinates (x=j, y=i)"


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 0
    bu3dfe_subjects: int = 12  # half F, half M; all 25 scans each
    bosphorus_subjects: int = 10  # bs000..
    cald3r_subjects: int = 12
    mend3s_subjects: int = 12
    cald3r_samples_per_class: int = 2  # per subject and class
    exact: bool = False  # True: the regular sample (fixed sizes, landmarks exactly on vertices)
    misaligned: int = 2  # scans misaligned on purpose, per dataset (BU-3DFE, Bosphorus)

    def __post_init__(self) -> None:
        if not isinstance(self.exact, bool):
            raise ValueError(f"SampleConfig.exact must be True or False, got {self.exact!r}")
        counts = {k: v for k, v in asdict(self).items() if k not in ("seed", "exact")}
        bad = {
            k: v
            for k, v in counts.items()
            if not isinstance(v, int) or isinstance(v, bool) or v < 0
        }
        if bad:
            raise ValueError(f"SampleConfig counts must be non-negative integers, got {bad}")
        if self.bosphorus_subjects > 1000 or self.mend3s_subjects > 99:
            raise ValueError("too many subjects for the datasets' zero-padded subject names")
        if self.cald3r_subjects > 999 or self.bu3dfe_subjects > 2 * 9999:
            raise ValueError("too many subjects for the datasets' zero-padded subject names")


@dataclass(frozen=True)
class _Task:
    dataset: str
    item: object
    options: Options


_WRITERS: dict[str, Callable[[object, Path, int, Options], tuple[str, dict]]] = {
    bu3dfe.DATASET: bu3dfe.write_scan,  # type: ignore[dict-item]
    bosphorus.DATASET: bosphorus.write_scan,  # type: ignore[dict-item]
    cald3r_mend3s.DATASET: cald3r_mend3s.write_sample,  # type: ignore[dict-item]
}


def _tasks(config: SampleConfig) -> list[_Task]:
    """Every scan to write, with its options; the planted scans are drawn here over each whole
    dataset, so which scans are planted never depends on which tasks run."""
    bu = bu3dfe.scans(config.seed, config.bu3dfe_subjects)
    bos = bosphorus.scans(config.bosphorus_subjects)
    tasks = _dataset_tasks(bu3dfe.DATASET, bu, bu3dfe.plan, config)
    tasks += _dataset_tasks(bosphorus.DATASET, bos, bosphorus.plan, config)
    for subset, n in (("cald3r", config.cald3r_subjects), ("mend3s", config.mend3s_subjects)):
        items = cald3r_mend3s.samples(subset, n, config.cald3r_samples_per_class)
        tasks += _dataset_tasks(cald3r_mend3s.DATASET, items, None, config)
    return tasks


def _dataset_tasks(
    dataset: str, items: list, plan: Callable | None, config: SampleConfig
) -> list[_Task]:
    plants = {} if config.exact or plan is None else plan(config.seed, items, config.misaligned)
    return [_Task(dataset, item, Options(config.exact, plants.get(item))) for item in items]


def _run(task: _Task, root: Path, seed: int) -> tuple[str, str, dict]:
    key, truth = _WRITERS[task.dataset](task.item, root / task.dataset, seed, task.options)
    return task.dataset, key, truth


def _run_star(args: tuple[_Task, Path, int]) -> tuple[str, str, dict]:
    return _run(*args)


def _results(tasks: list[_Task], root: Path, seed: int, workers: int) -> Iterator[tuple]:
    args = [(t, root, seed) for t in tasks]
    if workers <= 1:
        yield from map(_run_star, args)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=exit_with_parent)
    try:
        yield from pool.map(_run_star, args, chunksize=4)
    finally:  # after a failure, drop the queued scans instead of writing them all first
        pool.shutdown(wait=True, cancel_futures=True)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not a directory; pass overwrite=True")
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty; choose another folder or pass overwrite=True"
        )


def _replace(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished tree into place; an old OUT goes only once the new one is complete."""
    _check_target(out, overwrite)
    old = None
    if out.is_symlink() or out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()


def _irregularities(config: SampleConfig) -> dict:
    """What irregular mode draws, in words and numbers, so a reader of the truth knows."""
    return {
        "bu3dfe": bu3dfe.irregularities(),
        "bosphorus": bosphorus.irregularities(),
        "cald3r-mend3s": "none beyond the exact sample's sensor noise",
        "planted_per_dataset": config.misaligned,
        "planted_selection": "rng_for(seed, dataset, 'misaligned') over the eligible scans",
    }


def make_sample(
    out: Path,
    config: SampleConfig = SampleConfig(),  # noqa: B008  (frozen, so a shared default is safe)
    *,
    workers: int = 2,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write fake BU-3DFE, Bosphorus and CalD3r & MenD3s trees plus ground_truth.json into OUT.

    Returns the number of scans (samples for CalD3r & MenD3s) written per dataset.
    """
    out = Path(out).absolute()
    _check_target(out, overwrite)
    output_folder(out.parent)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        tasks = _tasks(config)
        truth: dict[str, dict[str, dict]] = {t: {} for t in _WRITERS}
        bar = progress_bar(total=len(tasks), desc="make-sample", unit="scan", enabled=progress)
        with bar:
            for dataset, key, entry in _results(tasks, tmp, config.seed, workers):
                truth[dataset][key] = entry
                bar.update()
        document = {
            **truth,
            "generator": {"seed": config.seed, "config": asdict(config)},
            "irregularities": None if config.exact else _irregularities(config),
            "classes": list(CLASSES),
            "pixel_convention": PIXEL_CONVENTION,
        }
        write_text(tmp / "ground_truth.json", json.dumps(document, indent=1, sort_keys=True) + "\n")
        _replace(tmp, out, overwrite)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and error.errno in NO_SPACE:  # a writer's error: no name
            raise full(out, error, "nothing was kept") from None
        raise
    return {dataset: len(entries) for dataset, entries in truth.items()}
