"""A folder as a comparison reads it: one variant's finished folds, each with the predictions of
the epoch its run reports, and the checks that make two folders comparable fold by fold.

The variant is the folder's only one where it has one (a scored submission's, named by its
submitter), else the reference model "full"; a caller may name it. The predictions are those
of the epoch the run's protocol reports (`ProtocolEntry.selection`), as its report shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.compare.stats import CompareError
from fer3d_bench.records.io import RecordError
from fer3d_bench.records.job import FULL
from fer3d_bench.report.load import Run, load_run
from fer3d_bench.splits.manifest import ManifestError, read_manifest

Position = tuple[int, int]  # (repetition, fold)


@dataclass
class Folder:
    """One compared folder: its run, the variant compared and, per protocol it ran, the
    predictions (sample id -> {"true", "pred"}) of each finished fold by (repetition, fold)."""

    path: Path
    run: Run
    variant: str
    folds: dict[str, dict[Position, dict[str, dict]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path)

    def manifest_sha256(self, protocol: str) -> str | None:
        """The sha256 of the manifest its protocol ran on: run.json's, else its folds'."""
        entry = self.run.info.protocols[protocol]
        if entry.manifest_sha256:
            return entry.manifest_sha256
        group = self.run.results.get((self.variant, protocol), [])
        return group[0].job.manifest_sha256 if group else None

    def classes(self, protocol: str) -> list[str]:
        entry = self.run.info.protocols[protocol]
        if entry.classes is not None:
            return list(entry.classes)
        return list(self.run.results[(self.variant, protocol)][0].classes)


def load_folder(path: Path, variant: str | None = None) -> Folder:
    """The folder at `path` (`report.load.load_run`, which refuses damaged files), its variant
    chosen, each finished fold's reported predictions gathered."""
    run = load_run(Path(path))
    chosen = chosen_variant(run, variant)
    folder = Folder(path=Path(path), run=run, variant=chosen)
    for (group_variant, protocol), results in run.results.items():
        if group_variant != chosen:
            continue
        selection = run.info.protocols[protocol].selection
        folds = folder.folds.setdefault(protocol, {})
        for result in results:
            if not result.ok:
                continue
            predictions = result.selected(selection)
            if predictions is None:
                raise CompareError(
                    f"{run.path / run.file_of(result)}: its run reports the {selection} epoch, "
                    "which this fold did not record"
                )
            folds[result.position] = predictions
    return folder


def chosen_variant(run: Run, asked: str | None) -> str:
    """`asked`, else the run's only variant with fold results, else "full"."""
    found = sorted({variant for variant, _ in run.results})
    if asked is not None:
        if asked not in found:
            raise CompareError(
                f"{run.path}: no fold results of variant {asked!r} (it has "
                f"{', '.join(found) or 'none'})"
            )
        return asked
    if len(found) == 1:
        return found[0]
    if FULL in found:
        return FULL
    raise CompareError(
        f"{run.path}: no fold results of any variant"
        if not found
        else f"{run.path}: variants {', '.join(found)} and no 'full': name the one to compare"
    )


def checked_pair(a: Folder, b: Folder, protocol: str) -> list[Position]:
    """The (repetition, fold) positions both finished on `protocol`, refused with one line
    naming both folders where the manifests or the finished folds differ."""
    sha_a, sha_b = a.manifest_sha256(protocol), b.manifest_sha256(protocol)
    if sha_a != sha_b:
        raise CompareError(
            f"{a.name} and {b.name}: {protocol} was run on different manifests "
            f"(sha256 {_short(sha_a)} vs {_short(sha_b)}); their folds are not the same samples"
        )
    ok_a, ok_b = set(a.folds[protocol]), set(b.folds[protocol])
    if ok_a != ok_b:
        lacks = [
            f"{who.name} lacks {_positions(sorted(theirs - mine))}"
            for who, mine, theirs in ((b, ok_b, ok_a), (a, ok_a, ok_b))
            if theirs - mine
        ]
        raise CompareError(
            f"{a.name} and {b.name}: the finished folds of {protocol} differ ({'; '.join(lacks)});"
            " a paired comparison needs the same folds on both sides"
        )
    if not ok_a:
        raise CompareError(f"{a.name} and {b.name}: no fold of {protocol} finished in either")
    for position in sorted(ok_a):
        tested_a, tested_b = set(a.folds[protocol][position]), set(b.folds[protocol][position])
        if tested_a != tested_b:
            rep, fold = position
            raise CompareError(
                f"{a.name} and {b.name}: repetition {rep} fold {fold} of {protocol} tested "
                f"different samples ({len(tested_a)} vs {len(tested_b)})"
            )
    return sorted(ok_a)


def fold_size_ratio(
    folders: list[Folder], protocol: str, positions: list[Position]
) -> tuple[float | None, str]:
    """(n_test / n_train averaged over the folds, where the sample count came from).

    n_test is each fold's count of tested samples; n_train the rest of the manifest's samples
    (every kind of split trains on all the samples it does not test). The manifest's sample
    count is read from the manifest file run.json names (its sha256 checked), else from the
    count run.json recorded; (None, why) when neither is there.
    """
    tried = []
    for folder in folders:
        entry = folder.run.info.protocols[protocol]
        if entry.manifest is None:
            continue
        try:
            manifest = read_manifest(Path(entry.manifest))
        except (ManifestError, RecordError):
            tried.append(entry.manifest)
            continue
        if manifest.sha256 == folder.manifest_sha256(protocol):
            return _mean_ratio(folders[0], protocol, positions, len(manifest)), (
                f"manifest {entry.manifest}"
            )
        tried.append(f"{entry.manifest} (another sha256)")
    for folder in folders:
        total = folder.run.info.protocols[protocol].samples
        if total is not None:
            return _mean_ratio(folders[0], protocol, positions, total), (
                f"the sample count {folder.name}/run.json records"
            )
    where = f" (tried {', '.join(dict.fromkeys(tried))})" if tried else ""
    return None, f"n_test/n_train unknown: no readable manifest{where} nor a recorded sample count"


def _mean_ratio(folder: Folder, protocol: str, positions: list[Position], total: int) -> float:
    ratios = []
    for position in positions:
        tested = len(folder.folds[protocol][position])
        if tested >= total:
            raise CompareError(
                f"{folder.name}: {protocol} tests {tested} samples in one fold, but its manifest "
                f"holds {total}: nothing left to train on"
            )
        ratios.append(tested / (total - tested))
    return sum(ratios) / len(ratios)


def _positions(positions: list[Position]) -> str:
    shown = ", ".join(f"repetition {rep} fold {fold}" for rep, fold in positions[:4])
    more = f" and {len(positions) - 4} more" if len(positions) > 4 else ""
    return f"{shown}{more}"


def _short(sha: str | None) -> str:
    return "not recorded" if sha is None else f"{sha[:12]}…"
