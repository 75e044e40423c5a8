"""The comparison record: per protocol, each folder after the first against the first.

Every number is recomputed from the stored per-sample predictions of the folds both sides
finished, so the two sides of a row always rest on the same samples. Fractions throughout;
`format` shows them in percent and percentage points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fer3d_bench.compare.load import Folder, Position, checked_pair, fold_size_ratio, load_folder
from fer3d_bench.compare.stats import (
    BOOTSTRAP_METHOD,
    CONFIDENCE,
    CompareError,
    Interval,
    McNemar,
    TTest,
    corrected_t_test,
    mcnemar,
    subject_bootstrap,
)
from fer3d_bench.metrics import prediction_metrics
from fer3d_bench.report.conditions import group_conditions
from fer3d_bench.sources import subject_of

COMPARISON_SCHEMA = "fer3d-bench/comparison/1"
# which test is used where, and why: printed under every comparison (and in the README)
NOTE = (
    "Differences are the other run minus the first, in percentage points. Over repeated k-fold "
    "or repeated hold-out folds, the 95% interval and p-value come from Nadeau and Bengio's "
    "corrected resampled t-test, because the folds' training sets overlap and the plain "
    "t-test's variance would be too small; on a single split (one repetition of one fold, such "
    "as a hold-out or cross-dataset protocol) McNemar's exact test on the samples only one of "
    "the two got right is used instead, and in every case a bootstrap that resamples test "
    "subjects, not samples (one person's samples are not independent), gives an interval of "
    "the accuracy difference pooled over every test prediction."
)


@dataclass(frozen=True)
class Side:
    """One side of a row: a folder's variant and its mean fold scores (fractions)."""

    folder: str
    variant: str
    epoch_selection: str
    accuracy: float
    macro_f1: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    """`other` against `baseline` on one protocol, over the folds both finished."""

    protocol: str
    kind: str
    folds: list[Position]
    baseline: Side
    other: Side
    accuracy: TTest  # the corrected t-test of the per-fold accuracy differences
    macro_f1: TTest
    bootstrap: Interval  # of the pooled accuracy difference, resampling test subjects
    mcnemar: McNemar | None  # on a single split only
    ratio_source: str  # where n_test / n_train came from, or why it is unknown
    warnings: list[str] = field(default_factory=list)  # conditions that keep them apart

    @property
    def repetitions(self) -> int:
        return len({rep for rep, _ in self.folds})

    @property
    def single_split(self) -> bool:
        return len(self.folds) == 1

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol,
            "kind": self.kind,
            "folds": [list(position) for position in self.folds],
            "baseline": self.baseline.to_json(),
            "other": self.other.to_json(),
            "accuracy": self.accuracy.to_json(),
            "macro_f1": self.macro_f1.to_json(),
            "bootstrap": self.bootstrap.to_json(),
            "mcnemar": None if self.mcnemar is None else self.mcnemar.to_json(),
            "ratio_source": self.ratio_source,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Comparison:
    """Every row, in the order of the first folder's protocols, then of the folders; `skipped`
    names the protocols a folder ran that the first did not, or the reverse."""

    folders: list[str]
    rows: list[Row]
    resamples: int
    seed: int
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "schema": COMPARISON_SCHEMA,
            "folders": list(self.folders),
            "confidence": CONFIDENCE,
            "bootstrap": {
                "method": BOOTSTRAP_METHOD,
                "resamples": self.resamples,
                "seed": self.seed,
            },
            "rows": [row.to_json() for row in self.rows],
            "skipped": list(self.skipped),
            "note": NOTE,
        }


def compare_runs(
    folders: list[Path],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    variants: Sequence[str | None] | None = None,
) -> Comparison:
    """Each folder after the first against the first, on every protocol both ran.

    `variants`, one per folder (None: the folder's only variant, else "full"), names the
    variant compared. Refused (CompareError, one line naming both folders): no protocol in
    common, a common protocol run on different manifests, or different finished folds.
    """
    if len(folders) < 2:
        raise CompareError(f"compare needs two folders or more, not {len(folders)}")
    if variants is not None and len(variants) != len(folders):
        raise CompareError(
            f"{len(variants)} variants named for {len(folders)} folders: name one per folder"
        )
    loaded = [
        load_folder(Path(path), variant)
        for path, variant in zip(folders, variants or [None] * len(folders), strict=True)
    ]
    base, rows, skipped = loaded[0], [], []
    pairs = []
    for other in loaded[1:]:
        common = [protocol for protocol in base.folds if protocol in other.folds]
        if not common:
            raise CompareError(
                f"{base.name} and {other.name}: no protocol in common "
                f"({_listed(base.folds)} vs {_listed(other.folds)})"
            )
        for first, second in ((other, base), (base, other)):
            skipped += [f"{first.name}: {p} is not in {second.name}" for p in _only(first, common)]
        pairs += [(protocol, other, checked_pair(base, other, protocol)) for protocol in common]
    order = list(base.folds)
    for protocol, other, positions in sorted(pairs, key=lambda p: order.index(p[0])):
        rows.append(_row(base, other, protocol, positions, resamples, seed))
    return Comparison(
        folders=[folder.name for folder in loaded],
        rows=rows,
        resamples=resamples,
        seed=seed,
        skipped=skipped,
    )


def _row(
    base: Folder,
    other: Folder,
    protocol: str,
    positions: list[Position],
    resamples: int,
    seed: int,
) -> Row:
    classes = base.classes(protocol)
    base_scores, other_scores = (
        [prediction_metrics(side.folds[protocol][p], classes) for p in positions]
        for side in (base, other)
    )
    ratio, source = fold_size_ratio([base, other], protocol, positions)
    tests = {}
    for metric in ("accuracy", "macro_f1"):
        differences = [
            b[metric] - a[metric] for a, b in zip(base_scores, other_scores, strict=True)
        ]
        if ratio is None and len(positions) >= 2:
            mean = sum(differences) / len(differences)
            tests[metric] = TTest(n=len(differences), mean=mean, ratio=None, reason=source)
        else:
            tests[metric] = corrected_t_test(differences, ratio)
    correct_a = _correctness(base, protocol, positions)
    correct_b = _correctness(other, protocol, positions)
    single = None
    if len(positions) == 1:
        ids = sorted(correct_a)
        single = mcnemar([correct_a[s][0] for s in ids], [correct_b[s][0] for s in ids])
    conditions = group_conditions(base.run.info, protocol, base.variant)
    differ = conditions.differences(group_conditions(other.run.info, protocol, other.variant))
    return Row(
        protocol=protocol,
        kind=base.run.info.protocols[protocol].kind,
        folds=positions,
        baseline=_side(base, protocol, base_scores),
        other=_side(other, protocol, other_scores),
        accuracy=tests["accuracy"],
        macro_f1=tests["macro_f1"],
        bootstrap=subject_bootstrap(correct_a, correct_b, subject_of, resamples, seed),
        mcnemar=single,
        ratio_source=source,
        warnings=[f"conditions differ: {words}" for words in differ],
    )


def _side(folder: Folder, protocol: str, scores: list[dict]) -> Side:
    return Side(
        folder=folder.name,
        variant=folder.variant,
        epoch_selection=folder.run.info.protocols[protocol].selection,
        accuracy=sum(s["accuracy"] for s in scores) / len(scores),
        macro_f1=sum(s["macro_f1"] for s in scores) / len(scores),
    )


def _correctness(folder: Folder, protocol: str, positions: list[Position]) -> dict[str, list]:
    """Sample id -> whether it was predicted right, in each of `positions` that tested it."""
    out: dict[str, list[bool]] = {}
    for position in positions:
        for sample, given in sorted(folder.folds[protocol][position].items()):
            out.setdefault(sample, []).append(given["pred"] == given["true"])
    return out


def _only(folder: Folder, common: list[str]) -> list[str]:
    return [protocol for protocol in folder.folds if protocol not in common]


def _listed(protocols) -> str:
    return ", ".join(protocols) or "none"
