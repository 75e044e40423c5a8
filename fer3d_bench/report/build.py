"""The report record: one group per (variant, protocol), each titled with every way it falls short.

Every group carries its conditions (`records.conditions`: how folds were dealt, how the epoch
was chosen, the data...), and its title names each way they differ from the protocol as
published. A row of the paper's table is given a delta only where its conditions and ours
compare; elsewhere the row says what keeps them apart.

Deterministic for the same inputs: groups in a fixed order (the reference model first, then the
known ablations, then any other), no timestamps of its own.
"""

from __future__ import annotations

import json

from fer3d_bench.errors import ReportError
from fer3d_bench.records.conditions import Conditions
from fer3d_bench.records.embeddings import first_embedded
from fer3d_bench.records.group import Aggregate, ReportGroup
from fer3d_bench.records.report import Report
from fer3d_bench.records.result import FoldResult
from fer3d_bench.records.run import RECORDED_IF_SET, ProtocolEntry, RunInfo, flat_config
from fer3d_bench.report.aggregate import aggregate
from fer3d_bench.report.conditions import (
    DATA_NOTE,
    LEAKY_NOTE,
    OPTIMISTIC_NOTE,
    TUNED_NOTE,
    condition_notes,
    differences,
    group_conditions,
)
from fer3d_bench.report.load import Run

VARIANTS = {  # what each variant changes; rows of the paper's tables VI and VII
    "full": "RGB + depth, attention fusion, transformer",
    "rgb-only": "RGB only, with its own attention (table VI)",
    "sum-fusion": "sum fusion instead of attention (table VII)",
    "no-transformer": "pooling instead of the transformer (table VII)",
    "sum-no-transformer": "sum fusion and pooling: no attention, no transformer (table VII, Eq. 8)",
    "ce": "cross-entropy loss alone (table VIII)",
    "center": "cross-entropy + center loss, no island term (table VIII)",
}
# the differences a reader should see first in a table title
_HEADLINE = {"epochs": 0, "model.backbone": 1, "model.input_size": 2}


def build_report(
    run: Run, published: dict[str, list[dict]], tables: dict[str, dict] | None = None
) -> Report:
    """Everything report.json holds; deterministic for the same inputs. `tables` (all of
    published.toml's) lays out the paper's table of an experiment the run reproduces."""
    groups = [_group(run, variant, protocol) for variant, protocol in _group_keys(run)]
    experiment = run.info.experiment
    return Report(
        run=run.info,
        groups=groups,
        published={p: published.get(p, []) for p in run.protocols},
        timings=_timings(groups),
        figures=[path for g in groups for path in g.figures],
        experiment=experiment_table(experiment, tables or {}, groups) if experiment else None,
    )


def experiment_table(experiment: dict, tables: dict[str, dict], groups: list[ReportGroup]) -> dict:
    """The paper's table an experiment reproduces: each published row, and beside a row of the
    paper's own network the group of this run that trained the same variant, with both
    conditions. A delta (points) only where the conditions compare; where they differ the row
    is "not comparable", and says how."""
    table = tables.get(experiment["table"])
    if table is None:
        raise ReportError(
            f"published.toml has no table {experiment['table']!r} (run.json names it)"
        )
    by_variant = {g.variant: g for g in groups if g.protocol == table["protocol"]}
    rows = []
    for row in table["rows"]:
        group = by_variant.get(row["variant"]) if row["variant"] else None
        mean = group.mean_accuracy if group else None
        ours = group.conditions if group else None
        apart = _apart(ours, row) if ours is not None else []
        compares = mean is not None and ours is not None and not apart
        rows.append(
            {
                **row,
                "group": list(group.key) if group else None,
                "ours": mean,
                "our_conditions": ours.to_json() if ours is not None else None,
                "differences": apart,
                "delta_points": round(100 * (mean - row["accuracy"]), 4) if compares else None,
                "reproduced": _reproduced(row, group, apart),
            }
        )
    return {**experiment, "source": table["source"], "protocol": table["protocol"], "rows": rows}


def _apart(ours: Conditions, row: dict) -> list[str]:
    """What keeps our conditions from the published row's, in words; empty when they compare."""
    theirs = Conditions.from_json(row.get("conditions") or {}, "published.toml", row["method"])
    return differences(ours, theirs)


def _reproduced(row: dict, group: ReportGroup | None, apart: list[str]) -> str:
    if not row["variant"]:
        return "no: another method's published result"
    if group is None or not group.aggregate.folds_ok:
        return "not yet: no finished fold"
    if apart:
        return "not comparable: " + "; ".join(apart)
    # the notes of conditions compare with the paper's here (no difference): only the rest count
    shortfalls = [note for note in group.truncation if not _of_conditions(note)]
    if shortfalls:  # each note without its details, which the group's title gives
        return "in part: " + "; ".join(note.split(" (")[0] for note in shortfalls)
    return "yes: the full protocol, with the paper's configuration"


def _of_conditions(note: str) -> bool:
    return note in (LEAKY_NOTE, OPTIMISTIC_NOTE, TUNED_NOTE) or note.startswith(DATA_NOTE)


def _group_keys(run: Run) -> list[tuple[str, str]]:
    """Variant full on every protocol (even with no result yet), ablations where they ran."""
    order = [*VARIANTS, *sorted(set(run.info.variants) - set(VARIANTS))]
    variants = [v for v in order if v in run.info.variants]
    return [(v, p) for v in variants for p in run.protocols if v == "full" or (v, p) in run.results]


def _group(run: Run, variant: str, protocol: str) -> ReportGroup:
    entry = run.info.protocols[protocol]
    results = run.results.get((variant, protocol), [])
    summary = aggregate(results, entry.kind, entry.selection)
    for row in summary.folds:
        row.result = run.files[(variant, protocol, row.repetition, row.fold)]
    submission = run.info.submission
    submitted = (submission.get("model") or "a model") if submission else None
    differs = {} if submitted else paper_differences(run.info, protocol)
    weights = None if submitted else run.info.weights_record
    shortfall, as_paper = weights_notes(weights) if weights else (None, None)
    if submitted:  # not our model: how it was trained is the submitter's to say
        as_paper = f"predictions submitted for {submitted}"
    conditions = group_conditions(run.info, protocol, variant)
    apart = condition_notes(conditions, protocol, entry.version)
    notes = truncation_notes(entry, differs, summary, shortfall, apart)
    if run.info.exclude_flagged:
        notes.append(_flagged_note(results))
    return ReportGroup(
        variant=variant,
        protocol=protocol,
        version=entry.version,
        kind=entry.kind,
        folds_expected=entry.expected_folds,
        truncation=notes,
        differs_from_paper=differs,
        weights=weights,
        title=table_title(protocol, entry.version, notes, as_paper),
        submitted=submitted or None,
        aggregate=summary,
        seconds=sum(float(r.seconds or 0.0) for r in results),
        figures=figure_names(variant, protocol, summary, results),
        conditions=conditions,
    )


def figure_names(variant: str, protocol: str, summary: Aggregate, results: list[FoldResult]):
    """The group's figures, relative to the run folder: confusion if a fold is ok, curves, and
    the t-SNE of a fold's test embeddings if one stored them."""
    names = []
    if summary.folds_ok:
        names.append(f"figures/{variant}_{protocol}_confusion.png")
    if any(r.history for r in results):
        names.append(f"figures/{variant}_{protocol}_curves.png")
    if first_embedded(results) is not None:
        names.append(f"figures/{variant}_{protocol}_tsne.png")
    return names


def _flagged_note(results: list[FoldResult]) -> str:
    """`evaluate --exclude-flagged` trains on fewer samples than the protocol names."""
    left_out = {sid for r in results for sid in r.training_left_out}
    return (
        f"flagged samples left out of training ({count(len(left_out), 'sample')}; test "
        "folds as the protocol)"
    )


def truncation_notes(
    entry: ProtocolEntry,
    differs: dict,
    summary: Aggregate,
    weights: str | None = None,
    conditions: list[str] | None = None,
) -> list[str]:
    """Every way this row falls short of the full protocol as published, in words for the
    table title: its conditions first (`condition_notes`: other data, folds by sample, an
    optimistic epoch), then the scope, the weights, the configuration, failed and missing
    folds."""
    scope = []
    if entry.repetitions_run < entry.repetitions_total:
        scope.append(f"{entry.repetitions_run} of {entry.repetitions_total} repetitions")
    if entry.folds_planned < entry.folds_total:
        scope.append(f"{entry.folds_planned} of {entry.folds_total} folds")
    notes = [*(conditions or []), *([", ".join(scope)] if scope else [])]
    if weights:
        notes.append(weights)
    if differs:
        keys = sorted(differs, key=lambda k: (k not in _HEADLINE, _HEADLINE.get(k, 0), k))
        pairs = ", ".join(f"{k} {word(differs[k][0])} vs {word(differs[k][1])}" for k in keys[:3])
        more = f" and {len(keys) - 3} more, listed under Provenance" if len(keys) > 3 else ""
        notes.append(f"configuration differs from the paper ({pairs}{more})")
    if summary.folds_failed:
        notes.append(f"{count(summary.folds_failed, 'fold')} failed")
    missing = entry.expected_folds - summary.folds_ok - summary.folds_failed
    if missing > 0:
        notes.append(f"{count(missing, 'fold')} missing")
    return notes


def table_title(protocol: str, version: str, notes: list[str], weights: str | None = None) -> str:
    title = f"{protocol} {version}" + (f", {weights}" if weights else "")
    return f"{title} — TRUNCATED: {'; '.join(notes)}" if notes else title


def paper_differences(info: RunInfo, protocol: str) -> dict[str, list]:
    """Dotted key -> [this run's value, the paper's] for the reference model on `protocol`.

    The paper's side is what run.json recorded when the run was planned: the paper preset,
    plus the protocol's [train] settings. A run planned before 0.10 recorded only its
    differences, as that version read the paper (30 epochs, efficientnet_b2): they are shown
    as recorded.
    """
    entry = info.protocols[protocol]
    if "paper" not in info.reference:
        return dict(info.reference.get("differs_from_paper") or {})
    ours = flat_config(info.variants["full"]) | dict(entry.train_applied or {})
    # a field recorded only when set is, where the paper's record lacks it, at its default
    paper = RECORDED_IF_SET | info.reference["paper"] | dict(entry.train_defaults or {})
    return {k: [v, paper.get(k)] for k, v in sorted(ours.items()) if v != paper.get(k)}


def weights_notes(record: dict) -> tuple[str | None, str | None]:
    """(how the weights fall short of the paper's, for the truncation notes; or, when they are
    the paper's, the words the title names them with)."""
    if not record.get("pretrained"):
        return "not pretrained (the paper fine-tunes HSEmotion's face EfficientNet-B2)", None
    known, name = record.get("known"), record.get("file")
    if known is None:
        return f"pretrained from {name}, not identified (planned before fer3d-bench 0.10)", None
    if known == "unknown":
        sha = str(record.get("sha256", ""))[:12]
        return (
            f"pretrained differently from the paper ({name}, sha256 {sha}…, not a known file)",
            None,
        )
    if not record.get("paper"):
        return f"pretrained differently from the paper ({known}: {record.get('trained_on')})", None
    if record.get("architecture_mismatch"):
        backbone = record.get("backbone")
        return (
            f"pretrained differently from the paper ({known} loaded into {backbone} by "
            "--allow-architecture-mismatch)",
            None,
        )
    return None, f"backbones pretrained as in the paper ({known}, {record['paper']})"


def word(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _timings(groups: list[ReportGroup]) -> dict:
    per_protocol: dict[str, float] = {}
    for g in groups:
        per_protocol[g.protocol] = per_protocol.get(g.protocol, 0.0) + g.seconds
    return {
        "total_seconds": sum(g.seconds for g in groups),
        "per_protocol_seconds": per_protocol,
        "per_group_seconds": {f"{g.variant}/{g.protocol}": g.seconds for g in groups},
    }
