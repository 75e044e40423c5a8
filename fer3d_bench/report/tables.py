"""The tables a reader compares: one per protocol beside its published rows, and the ablations."""

from __future__ import annotations

from collections.abc import Iterable

from fer3d_bench.records.group import Aggregate, ReportGroup
from fer3d_bench.records.job import FULL
from fer3d_bench.records.report import Report
from fer3d_bench.report.build import VARIANTS
from fer3d_bench.report.published import NOT_REPRODUCED


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
    header = ["row", "published (%)", "this run (%)", "Δ (points)", "reproduced by this run"]
    rows = []
    for row in experiment["rows"]:
        group = groups.get(tuple(row["group"])) if row["group"] else None
        delta = row["delta_points"]
        rows.append(
            [
                row["method"] + (f" (`{row['variant']}`)" if row["variant"] else ""),
                f"{row['accuracy']:.2f} (published)",
                accuracy_cell(group.aggregate) if group else "—",
                "—" if delta is None else f"{delta:+.2f}",
                row["reproduced"],
            ]
        )
    cited = dict.fromkeys(row["citation_text"] for row in experiment["rows"])
    notes = [f"Published rows as printed in {experiment['source']}; sources:"]
    notes += [f"- {text}" for text in cited]
    title = f"### {experiment['title']} (experiment {experiment['name']} {experiment['version']})"
    return "\n".join([title, "", *table(header, rows), "", *notes])


def _protocol_table(group: ReportGroup, published: list[dict]) -> str:
    summary = group.aggregate
    submitted = group.submitted
    ours = [
        f"{submitted} (submitted predictions)" if submitted else "fer3d-bench (this run)",
        accuracy_cell(summary),
        percent(summary.macro_f1.mean),
        f"{summary.folds_ok} / {group.folds_expected}",
        "the submitter's, scored by fer3d-bench" if submitted else "this run",
    ]
    rows = [ours] + [
        [p["method"], f"{p['accuracy']:.2f}", "—", "—", f"[{k}] {NOT_REPRODUCED}"]
        for k, p in enumerate(published, 1)
    ]
    header = ["method", "accuracy (%)", "macro-F1 (%)", "folds ok / run", "source"]
    notes = [f"[{k}] {_published_source(p)}" for k, p in enumerate(published, 1)]
    return "\n".join([f"### {group.title}", "", *table(header, rows), "", *notes])


def accuracy_cell(summary: Aggregate) -> str:
    """Mean ± std; with several repetitions both levels, since papers report either."""
    level = summary.accuracy
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
