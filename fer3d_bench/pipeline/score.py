"""Anyone's predictions scored exactly as ours are: checked against the manifest, written as a
run folder of result.json files, and reported by the same `write_report` as `evaluate`.

Refused, naming the row: a repetition or fold the protocol lacks, a sample id the manifest
lacks, a class the protocol lacks, a training sample of the fold scored as a test sample, and a
sample predicted twice in one fold. A fold with some predictions must have all its test samples
predicted (the first missing ones are named); folds with none are missing from the report and
counted in its title as truncation, as for our own runs. No dataset is needed: the true labels
are the manifest's.

The submitter may state the conditions their predictions were obtained under (how each fold's
epoch was chosen, epochs, input size, weights, whether a choice saw the test folds): what they
state is recorded in run.json's `submission["conditions"]` and shown beside the scores, what
they do not is "not stated". How the test folds were dealt is the manifest's, so that is ours
to say.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

from fer3d_bench import __version__
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path, output_folder
from fer3d_bench.manifests import CheckedManifest
from fer3d_bench.metrics import prediction_metrics
from fer3d_bench.names import checked_name
from fer3d_bench.records.conditions import SELECTIONS
from fer3d_bench.records.job import FULL, JobIdentity
from fer3d_bench.records.predictions import Prediction, PredictionsError, read_predictions
from fer3d_bench.records.provenance import now
from fer3d_bench.records.result import OK, FoldResult, write_result
from fer3d_bench.records.run import ProtocolEntry, RunInfo, write_run_info
from fer3d_bench.report import ReportPaths, write_report
from fer3d_bench.report.conditions import published_sha256
from fer3d_bench.splits import MANIFESTS_DIR


def score(
    protocol: str,
    predictions: Path,
    out: Path,
    manifests: Path = MANIFESTS_DIR,
    submission: dict | None = None,
    variant: str = FULL,
    conditions: dict | None = None,
) -> ReportPaths:
    """report.md / report.json of `predictions` on `protocol`, in the run folder `out`.

    `submission` (model, url, description: the submitter's own words) goes into the report as
    given; `conditions` (epoch_selection, epochs, input_size, weights, test_seen) are what the
    submitter states of their model, checked (`stated_conditions`). From a file of several
    protocols or variants (evaluate's predictions.csv) only the rows of `protocol` and
    `variant` are scored.
    """
    stated = stated_conditions(conditions or {})
    predictions, out = Path(predictions), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Fer3dError(
            f"{out} is not an empty folder: score writes a run folder of its own there (a "
            "result.json an earlier scoring left would be counted); choose a new --out"
        )
    found = CheckedManifest.of_protocol(protocol, Path(manifests)).checked()
    proto = found.protocol
    rows = [
        r
        for r in read_predictions(predictions)
        if (r.protocol in (None, proto.name)) and (r.variant in (None, variant))
    ]
    if not rows:
        raise PredictionsError(predictions, f"no row of {proto.name} (variant {variant})")
    by_fold = _checked(predictions, rows, found)
    entry = _entry(found, by_fold)
    record = dict(submission or {})
    record |= {"predictions": predictions.name, "sha256": _sha256(predictions)}
    record["conditions"] = stated
    info = RunInfo(
        variants={FULL: {}}
        if variant == FULL
        else {FULL: {}, checked_name(variant, "variant"): {}},
        protocols={proto.name: entry},
        name=out.name,
        fer3d_bench_version=__version__,
        launcher="score",
        created=now(),
        submission=record,
    )
    output_folder(out.parent)
    with atomic_path(out) as tmp:  # the whole folder, renamed into place once complete
        try:
            _write_run(tmp, info, by_fold, found, variant)
            paths = write_report(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return replace(
        paths,
        markdown=out / paths.markdown.name,
        json=out / paths.json.name,
        figures=[out / figure.relative_to(tmp) for figure in paths.figures],
    )


def _write_run(out: Path, info: RunInfo, by_fold: dict, found: CheckedManifest, variant: str):
    """run.json and one result.json per scored fold, in `out`."""
    out.mkdir()
    write_run_info(out / "run.json", info)
    manifest = found.manifest
    classes, samples = manifest.classes, manifest.samples()
    for (repetition, fold), fold_rows in sorted(by_fold.items()):
        result = FoldResult(
            job=JobIdentity(
                variant=variant,
                protocol=found.protocol.name,
                protocol_version=found.protocol.version,
                manifest_sha256=manifest.sha256,
                repetition=repetition,
                fold=fold,
                dataset_fingerprint=None,
                config_sha256=info.submission["sha256"],
            ),
            status=OK,
            classes=classes,
            predictions={
                r.sample_id: {"true": samples[r.sample_id].label, "pred": r.predicted}
                | ({"scores": r.scores} if r.scores else {})
                for r in sorted(fold_rows, key=lambda r: r.sample_id)
            },
            fer3d_bench_version=__version__,
        )
        result.metrics = prediction_metrics(result.predictions, classes)
        folder = out / result.job.folder
        output_folder(out, folder)
        write_result(folder / "result.json", result)


def _checked(path: Path, rows: list[Prediction], found: CheckedManifest):
    """(repetition, fold) -> its rows, every rule checked; PredictionsError names the row."""
    proto, manifest = found.protocol, found.manifest
    repetitions = manifest.repetitions
    folds = proto.folds_per_repetition
    classes, samples = set(manifest.classes), manifest.samples()
    seen: dict[tuple[int, int, str], int] = {}
    by_fold: dict[tuple[int, int], list[Prediction]] = {}
    tested: dict[tuple[int, int], set[str]] = {}  # each fold's test samples, once

    def unfit(problem: str) -> PredictionsError:
        """A row that does not fit the manifest: most likely the wrong manifest, not the row."""
        likely = (
            f". Checked against {found.which()}: predictions made on other manifests (the "
            "demo's, or ones you generated) do not fit it, and that is the likely cause"
        )
        python, cli = found.another("the predictions were made on")
        return PredictionsError(path, f"{problem}{likely}. {python}", f"{problem}{likely}. {cli}")

    for r in rows:
        if not (0 <= r.repetition < repetitions and 0 <= r.fold < folds):
            raise unfit(
                f"{r.where}: repetition {r.repetition}, fold {r.fold} is not a fold of "
                f"{proto.name} ({repetitions} repetitions of {folds} folds)",
            )
        if r.sample_id not in samples:
            raise unfit(f"{r.where}: {r.sample_id!r} is not a sample of the manifest")
        if r.predicted not in classes:
            raise PredictionsError(
                path, f"{r.where}: {r.predicted!r} is not a class of {proto.name} {sorted(classes)}"
            )
        where = (r.repetition, r.fold)
        if where not in tested:
            tested[where] = manifest.test_samples(r.repetition, r.fold)
        if r.sample_id not in tested[where]:
            raise unfit(
                f"{r.where}: {r.sample_id} is a training sample of repetition {r.repetition}, "
                f"fold {r.fold}: only its test samples may be scored",
            )
        key = (r.repetition, r.fold, r.sample_id)
        if key in seen:
            raise PredictionsError(
                path,
                f"{r.where}: {r.sample_id} is predicted twice in repetition "
                f"{r.repetition}, fold {r.fold} (also row {seen[key]})",
            )
        seen[key] = r.row
        by_fold.setdefault((r.repetition, r.fold), []).append(r)
    for (repetition, fold), fold_rows in sorted(by_fold.items()):
        expected = tested[(repetition, fold)]
        missing = sorted(set(expected) - {r.sample_id for r in fold_rows})
        if missing:
            raise unfit(
                f"repetition {repetition}, fold {fold} lacks {len(missing)} of its "
                f"{len(expected)} test samples (first: {', '.join(missing[:3])}); a fold is "
                "scored whole or not at all",
            )
    return by_fold


def _entry(found: CheckedManifest, by_fold: dict) -> ProtocolEntry:
    """The protocol as the report counts it: the smallest leading block of repetitions and folds
    that holds every scored fold (so evaluate's truncated runs read the same), the rest missing."""
    proto, manifest = found.protocol, found.manifest
    samples = manifest.samples()
    return ProtocolEntry(
        version=proto.version,
        kind=proto.kind,
        repetitions_total=manifest.repetitions,
        folds_total=proto.folds_per_repetition,
        repetitions_run=1 + max(rep for rep, _ in by_fold),
        folds_run=1 + max(fold for _, fold in by_fold),
        manifest=str(found.path),
        manifest_sha256=manifest.sha256,
        classes=manifest.classes,
        seed=manifest.seed,
        # the conditions that are the manifest's; how each epoch was chosen is the submitter's
        # to state (submission["conditions"]): the predictions are scored as given
        unit=proto.unit,
        manifest_published=manifest.sha256 == published_sha256(proto.name, proto.version),
        subjects=len({entry.subject for entry in samples.values()}),
        samples=len(samples),
    )


def stated_conditions(given: dict) -> dict:
    """The conditions a submitter states, checked: an epoch selection of SELECTIONS, epochs and
    an input size that are positive integers, weights and test_seen non-empty text. A key left
    out (or None) is not stated, and stays out of the record."""
    checks = {
        "epoch_selection": (lambda v: v in SELECTIONS, f"one of {', '.join(SELECTIONS)}"),
        "epochs": (_positive, "a positive integer"),
        "input_size": (_positive, "a positive integer (pixels)"),
        "weights": (_text, "a non-empty text"),
        "test_seen": (_text, "a non-empty text"),
    }
    unknown = sorted(set(given) - set(checks))
    if unknown:
        raise Fer3dError(f"unknown submission conditions {unknown}; known: {sorted(checks)}")
    stated = {}
    for key, value in given.items():
        if value is None:
            continue
        check, expected = checks[key]
        if not check(value):
            raise Fer3dError(f"the stated {key} must be {expected}, found {value!r}")
        stated[key] = value.strip() if isinstance(value, str) else value
    return stated


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
