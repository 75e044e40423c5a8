"""report.md: tables, conditions, then recall, repetitions, failures, published rows, timings,
provenance.

Of a scored submission it says only what the submitter stated: whatever they did not state
(how the epoch was chosen, the weights, the training time, a dataset...) is "not stated", never
a value of ours.
"""

from __future__ import annotations

import json

from fer3d_bench.records.conditions import NOT_STATED
from fer3d_bench.records.group import Spread
from fer3d_bench.records.report import Report
from fer3d_bench.records.run import RunInfo
from fer3d_bench.report.build import word
from fer3d_bench.report.published import NOT_REPRODUCED
from fer3d_bench.report.tables import (
    conditions_cell,
    format_tables,
    percent,
    printed,
    published_conditions,
    table,
)

# what a submitter may state of their model's conditions (`score --epoch-selection ...`)
STATED = {
    "epoch_selection": "how the epoch was chosen",
    "epochs": "epochs",
    "input_size": "input size (px)",
    "weights": "pretrained weights",
    "test_seen": "test folds seen by a choice",
}


def format_markdown(report: Report) -> str:
    """report.md: the tables, then recall, repetitions, failures, timings, provenance, figures."""
    info = report.run
    sections = [
        f"# fer3d-bench report: {info.name}",
        _submission_section(info) if info.submission else _run_line(info),
        _tuned_line(info),
        "## Results\n\n" + format_tables(report).rstrip("\n"),
        _conditions_section(report),
        _recall_section(report),
        _repetition_section(report),
        _failed_section(report),
        _published_section(report),
        _timing_section(report),
        _provenance_section(report),
        "## Figures\n\n" + "\n".join(f"- [{p}]({p})" for p in report.figures),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _submission_section(info: RunInfo) -> str:
    """Who submitted the predictions and what they say of their model, as given."""
    given = info.submission
    said = [f"- {key}: {given[key]}" for key in ("model", "url", "description") if given.get(key)]
    stated = given.get("conditions") or {}
    conditions = [f"- {words}: {stated.get(key, NOT_STATED)}" for key, words in STATED.items()]
    return "\n".join(
        [
            f"Predictions submitted to fer3d-bench {info.fer3d_bench_version} "
            f"({given['predictions']}, sha256 {given['sha256']}), scored against the manifest "
            "as `evaluate` scores its own. "
            "The model and its training are the submitter's; fer3d-bench checked neither.",
            "",
            "The submitter's own description, as given:" if said else "No description was given.",
            *said,
            "",
            "The conditions of the model as the submitter states them (how the test folds were "
            "dealt is the manifest's):",
            *conditions,
        ]
    )


def _run_line(info: RunInfo) -> str:
    commit = info.git_commit + (" (dirty)" if info.git_dirty else "")
    return (
        f"Preset `{info.preset}`, overrides `{json.dumps(info.overrides)}`;"
        f" fer3d-bench {info.fer3d_bench_version}, git {commit}; device"
        f" {info.device}; launcher {info.launcher}; created {info.created}."
        f" Published rows are copied from the papers cited and are not reproduced by fer3d-bench."
    )


def _conditions_section(report: Report) -> str:
    """Each group's conditions in full, and where each fact of a published row comes from."""
    lines = ["## Conditions (what each number was obtained under)", ""]
    for g in report.groups:
        lines.append(f"- {g.label}: {conditions_cell(g.conditions)}")
    return "\n".join(lines)


def _recall_section(report: Report) -> str:
    blocks = ["## Per-class recall (variant full, row-normalised confusion summed over folds)"]
    for g in report.full():
        summary = g.aggregate
        rows = [
            [c, percent(summary.recall[c]), str(n)]
            for c, n in zip(summary.classes, summary.confusion.support(), strict=True)
        ]
        blocks.append(
            f"### {g.protocol}\n\n" + "\n".join(table(["class", "recall (%)", "samples"], rows))
        )
    return "\n\n".join(blocks)


def _repetition_section(report: Report) -> str:
    blocks = ["## Per repetition (fold scores averaged within each repetition)"]
    for g in report.groups:
        rows = [
            [str(r.repetition), str(r.folds), _mean_std(r.accuracy), _mean_std(r.macro_f1)]
            for r in g.aggregate.repetitions
        ]
        header = ["repetition", "folds ok", "accuracy (%)", "macro-F1 (%)"]
        blocks.append(f"### {g.label}\n\n" + "\n".join(table(header, rows)))
    return "\n\n".join(blocks)


def _mean_std(spread: Spread) -> str:
    if spread.mean is None:
        return "—"
    std = f" ± {100 * spread.std:.2f}" if spread.std is not None else ""
    return f"{100 * spread.mean:.2f}{std}"


def _failed_section(report: Report) -> str:
    rows = [
        [g.variant, g.protocol, str(f.repetition), str(f.fold), str(f.reason)]
        for g in report.groups
        for f in g.aggregate.failed
    ]
    if not rows:
        return "## Failed folds\n\nNone."
    header = ["variant", "protocol", "repetition", "fold", "reason"]
    return "## Failed folds\n\n" + "\n".join(table(header, rows))


def _published_section(report: Report) -> str:
    """Every published row as printed, with its conditions and where each of them comes from."""
    listed = [(protocol, p) for protocol, rows in report.published.items() for p in rows]
    if not listed:
        return ""
    rows, sources = [], []
    for k, (protocol, p) in enumerate(listed, 1):
        conditions = published_conditions(p)
        rows.append(
            [
                f"[{k}]",
                protocol,
                p["method"],
                printed(p),
                p.get("source", NOT_STATED),
                p.get("protocol_as_stated", NOT_STATED),
                conditions_cell(conditions),
            ]
        )
        facts = [f"{field} from {where}" for field, where in sorted(conditions.sources.items())]
        if facts:
            sources.append(f"- [{k}] {'; '.join(facts)}")
    header = [
        "",
        "protocol",
        "method",
        "accuracy (%, as printed)",
        "printed in",
        "protocol as the paper states it",
        "conditions",
    ]
    notes = ["", "Where each stated condition comes from:", *sources] if sources else []
    lines = [*table(header, rows), *notes]
    return f"## Published rows ({NOT_REPRODUCED})\n\n" + "\n".join(lines)


def _timing_section(report: Report) -> str:
    if report.run.submission is not None:
        return f"## Timings\n\n{NOT_STATED}: submitted predictions carry no training time."
    timings = report.timings
    rows = [[key, f"{s:.1f}"] for key, s in timings["per_group_seconds"].items()]
    rows.append(["total", f"{timings['total_seconds']:.1f}"])
    return "## Timings (sum of fold seconds)\n\n" + "\n".join(
        table(["variant/protocol", "seconds"], rows)
    )


def _provenance_section(report: Report) -> str:
    info = report.run
    if info.submission is not None:
        return _submission_provenance(report)
    lines = ["## Provenance", ""]
    dataset = info.dataset
    lines.append(f"- dataset `{dataset.get('path')}`, fingerprint `{dataset.get('fingerprint')}`")
    for name, spec in info.protocols.items():
        lines.append(
            f"- protocol {name} {spec.version} ({spec.kind}),"
            f" manifest `{spec.manifest}` sha256 `{spec.manifest_sha256}`"
        )
    for name, config in info.variants.items():
        settings = json.dumps(config, sort_keys=True)
        lines.append(f"- variant {name}: seed {config.get('seed')}, config `{settings}`")
    if info.config_file:
        source = info.config_file
        lines.append(f"- configuration file `{source.get('file')}` sha256 `{source.get('sha256')}`")
    lines.append(f"- pretrained weights: {_weights_line(info.weights_record)}")
    for group in report.full():
        for key, value in (group.differs_from_paper or {}).items():
            lines.append(
                f"- differs from the paper on {group.protocol}: {key} {word(value[0])} vs "
                f"{word(value[1])}"
            )
    environment = ", ".join(f"{k} {v}" for k, v in sorted(info.environment.items()))
    lines.append(f"- environment: {environment}")
    return "\n".join(lines)


def _submission_provenance(report: Report) -> str:
    """What fer3d-bench knows of a scored submission: the file, the manifests, its own version;
    of the model, only what the submitter stated."""
    info = report.run
    given = info.submission
    lines = ["## Provenance", ""]
    lines.append(f"- predictions `{given['predictions']}` sha256 `{given['sha256']}`")
    lines.append(
        f"- dataset: {NOT_STATED} (no dataset is read: the true labels are the manifest's)"
    )
    for name, spec in info.protocols.items():
        lines.append(
            f"- protocol {name} {spec.version} ({spec.kind}),"
            f" manifest `{spec.manifest}` sha256 `{spec.manifest_sha256}`"
        )
    stated = given.get("conditions") or {}
    lines.append(f"- the model's configuration and seed: {NOT_STATED}")
    lines.append(f"- pretrained weights: {stated.get('weights', NOT_STATED)}")
    lines.append(f"- scored by fer3d-bench {info.fer3d_bench_version}, created {info.created}")
    return "\n".join(lines)


def _weights_line(record: dict) -> str:
    if not record.get("pretrained"):
        return "none (backbones trained from scratch)"
    parts = [f"`{record.get('file')}` sha256 `{record.get('sha256')}`"]
    if record.get("known") is not None:
        parts.append(f"known as {record['known']}")
    if record.get("paper"):
        parts.append(str(record["paper"]))
    if record.get("architecture_mismatch"):
        parts.append(f"loaded into {record.get('backbone')} by --allow-architecture-mismatch")
    if record.get("imported_from_sha256"):
        parts.append(f"imported from a file of sha256 `{record['imported_from_sha256']}`")
    return ", ".join(parts)


def _tuned_line(info: RunInfo) -> str:
    """What a configuration from `fer3d-bench tune` was tuned on, and what it never saw."""
    tuned = (info.config_file or {}).get("tuned")
    if not tuned:
        return ""
    where = f"{tuned.get('protocol')} repetition {tuned.get('repetition')} fold {tuned.get('fold')}"
    return (
        f"Hyperparameters from Optuna study `{tuned.get('study')}` (sha256 "
        f"`{tuned.get('study_sha256')}`, best of {tuned.get('trials')} trials: trial "
        f"{tuned.get('trial')}, validation accuracy {_fraction(tuned.get('value'))}), scored on "
        f"{tuned.get('inner_folds')} validation folds made only from the training subjects of "
        f"{where}: that fold's test subjects were never seen while tuning; the other folds' test "
        "subjects were among the subjects it was tuned on."
    )


def _fraction(value) -> str:
    """A fraction as a percentage (0.168 -> "16.80 %"); anything else as recorded."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{100 * value:.2f} %"
    return NOT_STATED if value is None else str(value)
