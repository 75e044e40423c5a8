"""A run folder as the report reads it: run.json and every result.json, checked together.

A damaged file is named; so is a result whose configuration, manifest, dataset or classes
differ from the rest of its row, since one row of a table must come from one of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.errors import ReportError
from fer3d_bench.records.result import FoldResult, read_result
from fer3d_bench.records.run import RunInfo, read_run_info

Group = tuple[str, str]  # (variant, protocol)


@dataclass
class Run:
    """run.json and the fold results below it by (variant, protocol), each sorted by (rep, fold)."""

    path: Path
    info: RunInfo
    results: dict[Group, list[FoldResult]] = field(default_factory=dict)
    files: dict[tuple[str, str, int, int], str] = field(default_factory=dict)

    @property
    def protocols(self) -> list[str]:
        return list(self.info.protocols)

    def file_of(self, result: FoldResult) -> str:
        """The result's path, relative to the run folder."""
        return self.files[(result.variant, result.protocol, *result.position)]


def load_run(run_dir: Path) -> Run:
    """run.json and every result.json below it, refusing damaged or mutually inconsistent ones."""
    run_dir = Path(run_dir)
    run = Run(path=run_dir, info=read_run_info(run_dir / "run.json"))
    for path in sorted(run_dir.rglob("result.json")):
        _add_result(run, path, read_result(path))
    for (variant, protocol), group in run.results.items():
        group.sort(key=lambda r: r.position)
        _check_group(run, variant, protocol, group)
    return run


def _add_result(run: Run, path: Path, result: FoldResult) -> None:
    variant, protocol = result.variant, result.protocol
    if variant not in run.info.variants or protocol not in run.info.protocols:
        raise ReportError(f"{path}: {variant}/{protocol} is not a variant/protocol of run.json")
    key = (variant, protocol, *result.position)
    if key in run.files:
        raise ReportError(f"{path}: same job as {run.files[key]} ({key})")
    run.files[key] = path.relative_to(run.path).as_posix()
    run.results.setdefault((variant, protocol), []).append(result)


def _check_group(run: Run, variant: str, protocol: str, group: list[FoldResult]) -> None:
    """One row of a table must come from one config, one manifest and one dataset."""
    files = [run.file_of(r) for r in group]
    entry = run.info.protocols[protocol]
    expected = {
        "manifest_sha256": entry.manifest_sha256,
        "dataset_fingerprint": run.info.fingerprint,
        "config_sha256": group[0].job.config_sha256,
    }
    classes = entry.classes if entry.classes is not None else group[0].classes
    for result, name in zip(group, files, strict=True):
        for key, value in expected.items():
            found = getattr(result.job, key)
            if value is not None and found != value:
                source = files[0] if key == "config_sha256" else "run.json"
                raise ReportError(
                    f"{run.path / name}: {key} {found} differs from {value} of {source}"
                    f" ({variant}/{protocol})"
                )
        if list(result.classes) != list(classes):
            raise ReportError(f"{run.path / name}: classes differ from the protocol's {classes}")
