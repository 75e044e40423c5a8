"""The tables a reader compares: one per protocol beside its published rows, and the ablations.

Every row shows its conditions (how folds were dealt, how the epoch was chosen, the data...),
and a published row says whether it compares with this run, or what keeps them apart: numbers
of different conditions are never lined up as if they measured the same thing. Published
accuracies are shown with the digits their paper prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from fer3d_bench.records.conditions import NOT_STATED, Conditions
from fer3d_bench.records.group import Aggregate, Levels, ReportGroup
from fer3d_bench.records.job import FULL
from fer3d_bench.records.report import Report
from fer3d_bench.report.build import VARIANTS
from fer3d_bench.report.conditions import differences
from fer3d_bench.report.published import NOT_REPRODUCED

NO_CONDITIONS = "not recorded (a report before 0.16)"


def format_tables(report: Report) -> str:
    """The markdown the CLI prints: one table per protocol beside published rows, ablations."""
    blocks = [_protocol_table(g, report.published.get(g.protocol, [])) for g in report.full()]
    ablation = _ablation_table(report)
    paper = [_experiment_table(report)] if report.experiment else []
    return "\n\n".join([*paper, *blocks, *([ablation] if ablation else [])]) + "\n"


def _experiment_table(report: Report) -> str:
    """The paper's table as it prints it, one row per published row, ours beside its own."""
    experiment = report.experiment
    groups = {g.key: g for g in report.groups}
    header = [
        "row",
        "published (%)",
        "this run (%)",
        "Δ (points)",
        "reproduced by this run",
        "conditions (published)",
        "conditions (this run)",
    ]
    rows = []
    for row in experiment["rows"]:
        group = groups.get(tuple(row["group"])) if row["group"] else None
        delta = row.get("delta_points")
        ours = row.get("our_conditions")
        rows.append(
            [
                row["method"] + (f" (`{row['variant']}`)" if row["variant"] else ""),
                f"{printed(row)} (published)",
                accuracy_cell(group.aggregate) if group else "—",
                "—" if delta is None else f"{delta:+.2f}",
                row["reproduced"],
                conditions_cell(published_conditions(row)),
                "—" if ours is None else conditions_cell(Conditions.from_json(ours, "report")),
            ]
        )
    cited = dict.fromkeys(row["citation_text"] for row in experiment["rows"])
    notes = [
        f"Published rows as printed in {experiment['source']}. A Δ is given only where the "
        "conditions of the published row and of this run compare; sources:"
    ]
    notes += [f"- {text}" for text in cited]
    title = f"### {experiment['title']} (experiment {experiment['name']} {experiment['version']})"
    return "\n".join([title, "", *table(header, rows), "", *notes])


def _protocol_table(group: ReportGroup, published: list[dict]) -> str:
    summary = group.aggregate
    submitted = group.submitted
    ours = [
        f"{submitted} (submitted predictions)" if submitted else "fer3d-bench (this run)",
        accuracy_cell(summary),
        spread_cell(summary, summary.macro_f1),
        f"{summary.folds_ok} / {group.folds_expected}",
        conditions_cell(group.conditions),
        "—",
        "the submitter's, scored by fer3d-bench" if submitted else "this run",
    ]
    rows = [ours] + [
        [
            p["method"],
            f"{printed(p)} (published)",
            "—",
            "—",
            conditions_cell(published_conditions(p)),
            compares_cell(group.conditions, published_conditions(p)),
            f"[{k}] {NOT_REPRODUCED}",
        ]
        for k, p in enumerate(published, 1)
    ]
    header = [
        "method",
        "accuracy (%)",
        "macro-F1 (%)",
        "folds ok / run",
        "conditions",
        "compares with this run",
        "source",
    ]
    notes = [f"[{k}] {_published_source(p)}" for k, p in enumerate(published, 1)]
    return "\n".join([f"### {group.title}", "", *table(header, rows), "", *notes])


def printed(row: dict) -> str:
    """A published accuracy as its paper prints it, in percent."""
    return str(row.get("printed") or f"{100 * row['accuracy']:g}")


def published_conditions(row: dict) -> Conditions:
    """A published row's conditions; none stated where the row carries none."""
    return Conditions.from_json(row.get("conditions") or {}, "report", row.get("method", "row"))


def conditions_cell(conditions: Conditions | None) -> str:
    """The conditions in words; "not stated" where nothing of them is."""
    if conditions is None:
        return NO_CONDITIONS
    if _nothing_stated(conditions):
        return NOT_STATED
    return conditions.words()


def _nothing_stated(conditions: Conditions) -> bool:
    return replace(conditions, sources={}, extra={}) == Conditions()


def compares_cell(ours: Conditions | None, theirs: Conditions) -> str:
    """Whether a published row compares with this run; where not, what keeps them apart."""
    if ours is None:
        return f"not known: this run's conditions are {NO_CONDITIONS}"
    apart = differences(ours, theirs)
    return "no: " + "; ".join(apart) if apart else "yes: the same conditions"


def accuracy_cell(summary: Aggregate) -> str:
    """Mean ± std; with several repetitions both levels, since papers report either."""
    return spread_cell(summary, summary.accuracy)


def spread_cell(summary: Aggregate, level: Levels) -> str:
    """A score's mean ± std (accuracy or macro-F1), as `accuracy_cell` shows accuracy."""
    if level.mean is None:
        return "—"
    mean = f"{100 * level.mean:.2f}"
    if len(summary.repetitions) > 1:
        across, within = level.std_across_repetitions, level.mean_std_within_repetitions
        within_text = f"; within-repetition std {100 * within:.2f}" if within is not None else ""
        reps = len(summary.repetitions)
        return f"{mean} ± {100 * across:.2f} across {reps} repetitions{within_text}"
    std = level.mean_std_within_repetitions
    folds = summary.repetitions[0].folds
    return f"{mean} ± {100 * std:.2f} over {folds} folds" if std is not None else mean


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _published_source(row: dict) -> str:
    return f"{row['citation_text']}; as printed in {row['source']}"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]


def _ablation_table(report: Report) -> str | None:
    """Rows = variant (full first), per protocol its accuracy and the change from full."""
    variants = list(dict.fromkeys(g.variant for g in report.groups))
    if len(variants) < 2:
        return None
    protocols = list(dict.fromkeys(g.protocol for g in report.groups if g.variant != FULL))
    cells = {g.key: g for g in report.groups}
    header = ["variant", *[f"{p} {h}" for p in protocols for h in ("accuracy (%)", "Δ vs full")]]
    rows = [[f"{v}: {VARIANTS.get(v, v)}", *_ablation_cells(v, protocols, cells)] for v in variants]
    truncated = [f"- {g.variant} / {g.title}" for g in cells.values() if g.truncation]
    title = "### Ablations" + (" — TRUNCATED (see notes)" if truncated else "")
    return "\n".join([title, "", *table(header, rows), *([""] + truncated if truncated else [])])


def _ablation_cells(
    variant: str, protocols: list[str], cells: dict[tuple[str, str], ReportGroup]
) -> list[str]:
    out = []
    for protocol in protocols:
        group, full = cells.get((variant, protocol)), cells.get((FULL, protocol))
        mean = group.mean_accuracy if group else None
        base = full.mean_accuracy if full else None
        out.append(accuracy_cell(group.aggregate) if group else "—")
        show_delta = variant != FULL and mean is not None and base is not None
        out.append(f"{100 * (mean - base):+.2f} points" if show_delta else "—")
    return out
