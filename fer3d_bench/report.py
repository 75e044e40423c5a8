"""An evaluation run's fold results -> protocol aggregates, tables beside published rows, figures.

Aggregation is the protocols' own, the same code path for every kind:

* fold scores (accuracy, macro-F1) are averaged within each repetition first; the headline value
  is the mean of the repetition means. With several repetitions (the legacy BU-3DFE protocol,
  10 folds x 100 repetitions, as Li et al. and the field report it) both levels are kept: the std
  across repetition means and the mean of the within-repetition stds. With one repetition the
  headline std is the std over its folds; a hold-out or cross-dataset run has one fold, no std.
* every std is the sample standard deviation (ddof=1), and None when fewer than two values exist.
* confusion counts are summed over every ok fold of every repetition; the reported matrix is the
  row-normalised sum (a class with no samples keeps a zero row), and per-class recall is its
  diagonal (None for a class with no samples).
* failed folds count, with their reasons, and never enter an aggregate.

Nothing here imports torch: the report runs on a login node from the JSON files alone.
"""

from __future__ import annotations

import json
import math
import statistics
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fer3d_bench.errors import Fer3dError  # noqa: E402
from fer3d_bench.io import atomic_path, save_figure  # noqa: E402

RUN_SCHEMA = "fer3d-bench/run/1"
RESULT_SCHEMA = "fer3d-bench/result/1"
REPORT_SCHEMA = "fer3d-bench/report/1"
KINDS = ("kfold", "holdout", "cross")
PUBLISHED = Path(__file__).with_name("published.toml")
NOT_REPRODUCED = "published, not reproduced by fer3d-bench"
VARIANTS = {  # what each variant changes; rows of the seed paper's tables VI and VII
    "full": "RGB + depth, attention fusion, transformer",
    "rgb-only": "RGB only (table VI)",
    "sum-fusion": "sum fusion instead of attention (table VII)",
    "no-transformer": "pooling instead of the transformer (table VII)",
}
_CONSISTENT = ("config_sha256", "manifest_sha256", "dataset_fingerprint")
_PROTOCOL_KEYS = ("version", "kind", "repetitions_total", "folds_total", "repetitions_run")


class ReportError(Fer3dError):
    """A run folder, a result file or the published table cannot be reported on as it stands."""


@dataclass
class Run:
    """run.json and the fold results below it by (variant, protocol), each sorted by (rep, fold)."""

    path: Path
    info: dict
    results: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    files: dict[tuple[str, str, int, int], str] = field(default_factory=dict)

    @property
    def protocols(self) -> list[str]:
        return list(self.info["protocols"])


@dataclass
class ReportPaths:
    markdown: Path
    json: Path
    figures: list[Path]
    report: dict = field(default_factory=dict)  # what report.json holds


# ---------------------------------------------------------------------------- metrics


def fold_metrics(true: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class recall and confusion (rows true, columns predicted)."""
    index = {name: i for i, name in enumerate(classes)}
    if len(true) != len(pred):
        raise ReportError(f"fold_metrics: {len(true)} true labels but {len(pred)} predictions")
    if not true:
        raise ReportError("fold_metrics: no predictions to score")
    unknown = sorted({label for label in (*true, *pred) if label not in index})
    if unknown:
        raise ReportError(
            f"fold_metrics: labels {unknown} are not among the classes {list(classes)}"
        )
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, ([index[t] for t in true], [index[p] for p in pred]), 1)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    hits = np.diag(confusion)
    recall = {
        c: (float(hits[i] / support[i]) if support[i] else None) for i, c in enumerate(classes)
    }
    present = [i for i in range(len(classes)) if support[i] or predicted[i]]
    return {
        "n": len(true),
        "accuracy": float(hits.sum() / len(true)),
        "macro_f1": statistics.fmean(_f1(hits[i], support[i], predicted[i]) for i in present),
        "recall": recall,
        "confusion": confusion.tolist(),
    }


def _f1(hits: int, support: int, predicted: int) -> float:
    precision = hits / predicted if predicted else 0.0
    recall = hits / support if support else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: Sequence[float]) -> float | None:
    """Sample std (ddof=1): the spread a reader may compare with papers that report it."""
    return statistics.stdev(values) if len(values) >= 2 else None


# ---------------------------------------------------------------------------- aggregation


def aggregate(results: list[dict], kind: str) -> dict:
    """One (variant, protocol)'s results reduced as the protocol defines it (module docstring)."""
    if kind not in KINDS:
        raise ReportError(f"aggregate: protocol kind {kind!r} is not one of {KINDS}")
    ordered = sorted(results, key=_fold_key)
    ok = [r for r in ordered if r.get("status") == "ok"]
    scored = {_fold_key(r): _score(r) for r in ok}
    if len(scored) < len(ok):
        raise ReportError("aggregate: two ok results share a (repetition, fold)")
    repetitions = [_repetition(rep, scored) for rep in sorted({rep for rep, _ in scored})]
    classes = list(ordered[0]["classes"]) if ordered else []
    confusion = _pooled_confusion([m["confusion"] for m in scored.values()], len(classes))
    failed = [r for r in ordered if r.get("status") != "ok"]
    return {
        "kind": kind,
        "classes": classes,
        "folds_ok": len(scored),
        "folds_failed": len(failed),
        "failed": [{**_job_position(r), "reason": r.get("reason")} for r in failed],
        "folds": [_fold_row(r, scored.get(_fold_key(r))) for r in ordered],
        "repetitions": repetitions,
        "accuracy": _levels(repetitions, "accuracy"),
        "macro_f1": _levels(repetitions, "macro_f1"),
        "confusion": confusion,
        "recall": _pooled_recall(confusion, classes),
    }


def _fold_key(result: dict) -> tuple[int, int]:
    return int(result["job"]["repetition"]), int(result["job"]["fold"])


def _job_position(result: dict) -> dict:
    repetition, fold = _fold_key(result)
    return {"repetition": repetition, "fold": fold}


def _score(result: dict) -> dict:
    """Metrics recomputed from the per-sample predictions, the record every number traces to."""
    predictions = result.get("predictions") or {}
    keys = sorted(predictions)
    true = [predictions[k]["true"] for k in keys]
    pred = [predictions[k]["pred"] for k in keys]
    try:
        return fold_metrics(true, pred, result["classes"])
    except ReportError as error:
        job = result["job"]
        where = (
            f"{job['variant']}/{job['protocol']} repetition {job['repetition']} fold {job['fold']}"
        )
        raise ReportError(f"{where}: {error}") from None


def _repetition(repetition: int, scored: dict[tuple[int, int], dict]) -> dict:
    folds = [m for (rep, _), m in sorted(scored.items()) if rep == repetition]
    return {
        "repetition": repetition,
        "folds": len(folds),
        **{key: _spread([m[key] for m in folds]) for key in ("accuracy", "macro_f1")},
    }


def _spread(values: list[float]) -> dict:
    return {"mean": _mean(values), "std": _std(values)}


def _levels(repetitions: list[dict], key: str) -> dict:
    """Mean of repetition means; the spread across them and the mean spread within them."""
    means = [r[key]["mean"] for r in repetitions]
    within = [r[key]["std"] for r in repetitions if r[key]["std"] is not None]
    return {
        "mean": _mean(means),
        "std_across_repetitions": _std(means),
        "mean_std_within_repetitions": _mean(within),
    }


def _pooled_confusion(matrices: list[list[list[int]]], size: int) -> dict:
    counts = np.zeros((size, size), dtype=np.int64)
    for matrix in matrices:
        counts += np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    return {"counts": counts.tolist(), "normalised": normalised.tolist()}


def _pooled_recall(confusion: dict, classes: list[str]) -> dict[str, float | None]:
    counts, normalised = confusion["counts"], confusion["normalised"]
    return {c: (normalised[i][i] if sum(counts[i]) else None) for i, c in enumerate(classes)}


def _fold_row(result: dict, metrics: dict | None) -> dict:
    return {
        **_job_position(result),
        "status": result.get("status"),
        "reason": result.get("reason"),
        "seconds": result.get("seconds"),
        "n": metrics["n"] if metrics else None,
        "accuracy": metrics["accuracy"] if metrics else None,
        "macro_f1": metrics["macro_f1"] if metrics else None,
        "checkpoint": result.get("checkpoint"),
    }


# ---------------------------------------------------------------------------- loading


def load_run(run_dir: Path) -> Run:
    """run.json and every result.json below it, refusing damaged or mutually inconsistent ones."""
    run_dir = Path(run_dir)
    info = _read_json(run_dir / "run.json", RUN_SCHEMA)
    _check_run_info(run_dir / "run.json", info)
    run = Run(path=run_dir, info=info)
    for path in sorted(run_dir.rglob("result.json")):
        _add_result(run, path, _read_json(path, RESULT_SCHEMA))
    for (variant, protocol), group in run.results.items():
        group.sort(key=_fold_key)
        _check_group(run, variant, protocol, group)
    return run


def _read_json(path: Path, schema: str) -> dict:
    if not path.is_file():
        raise ReportError(f"{path}: missing; an evaluation run folder holds run.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: unreadable or truncated JSON ({error})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ReportError(f"{path}: expected schema {schema!r}, found {found!r}")
    return data


def _check_run_info(path: Path, info: dict) -> None:
    variants, protocols = info.get("variants"), info.get("protocols")
    if not isinstance(variants, dict) or "full" not in variants:
        raise ReportError(f"{path}: 'variants' must be an object holding at least 'full'")
    if not isinstance(protocols, dict) or not protocols:
        raise ReportError(f"{path}: 'protocols' must be a non-empty object")
    for name, spec in protocols.items():
        missing = [key for key in _PROTOCOL_KEYS if key not in spec]
        if missing:
            raise ReportError(f"{path}: protocol {name!r} lacks {missing}")
        if spec["kind"] not in KINDS:
            raise ReportError(f"{path}: protocol {name!r} has unknown kind {spec['kind']!r}")


def _add_result(run: Run, path: Path, data: dict) -> None:
    job = data.get("job")
    required = ("variant", "protocol", "repetition", "fold", *_CONSISTENT)
    if not isinstance(job, dict) or any(key not in job for key in required):
        raise ReportError(f"{path}: the 'job' block must hold {list(required)}")
    if data.get("status") not in ("ok", "failed") or not isinstance(data.get("classes"), list):
        raise ReportError(f"{path}: needs 'status' ok/failed and a 'classes' list")
    if data["status"] == "ok" and not data.get("predictions"):
        raise ReportError(f"{path}: status ok but no predictions")
    variant, protocol = job["variant"], job["protocol"]
    if variant not in run.info["variants"] or protocol not in run.info["protocols"]:
        raise ReportError(f"{path}: {variant}/{protocol} is not a variant/protocol of run.json")
    key = (variant, protocol, *_fold_key(data))
    relative = path.relative_to(run.path).as_posix()
    if key in run.files:
        raise ReportError(f"{path}: same job as {run.files[key]} ({key})")
    run.files[key] = relative
    run.results.setdefault((variant, protocol), []).append(data)


def _check_group(run: Run, variant: str, protocol: str, group: list[dict]) -> None:
    """One row of a table must come from one config, one manifest and one dataset."""
    files = [run.files[(variant, protocol, *_fold_key(r))] for r in group]
    expected = {
        "manifest_sha256": run.info["protocols"][protocol].get("manifest_sha256"),
        "dataset_fingerprint": run.info.get("dataset", {}).get("fingerprint"),
        "config_sha256": group[0]["job"]["config_sha256"],
    }
    classes = run.info["protocols"][protocol].get("classes", group[0]["classes"])
    for result, name in zip(group, files, strict=True):
        for key, value in expected.items():
            found = result["job"][key]
            if value is not None and found != value:
                source = files[0] if key == "config_sha256" else "run.json"
                raise ReportError(
                    f"{run.path / name}: {key} {found} differs from {value} of {source}"
                    f" ({variant}/{protocol})"
                )
        if list(result["classes"]) != list(classes):
            raise ReportError(f"{run.path / name}: classes differ from the protocol's {classes}")


def load_published(path: Path = PUBLISHED) -> dict[str, list[dict]]:
    """Published rows per protocol, each with its citation resolved and rendered as text."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ReportError(f"{path}: cannot read the published table ({error})") from None
    citations = data.get("citations", {})
    table: dict[str, list[dict]] = {}
    for protocol, rows in sorted(data.get("results", {}).items()):
        table[protocol] = [_published_row(path, protocol, row, citations) for row in rows]
    return table


def _published_row(path: Path, protocol: str, row: dict, citations: dict) -> dict:
    if not {"method", "accuracy", "citation", "protocol"} <= row.keys():
        raise ReportError(f"{path}: a {protocol} row needs method, accuracy, citation, protocol")
    if row["citation"] not in citations:
        raise ReportError(f"{path}: {protocol}/{row['method']} cites unknown {row['citation']!r}")
    citation = citations[row["citation"]]
    return {
        "method": row["method"],
        "accuracy": float(row["accuracy"]),
        "protocol_as_stated": row["protocol"],
        "verified": bool(row.get("verified", False)),
        "note": row.get("note"),
        "citation_key": row["citation"],
        "citation": citation,
        "citation_text": citation_text(citation),
    }


def citation_text(citation: dict) -> str:
    """Authors, title, venue, year and identifiers, with what was not verified said aloud."""
    parts = [
        citation.get("authors") or "authors not verified",
        f'"{citation["title"]}"',
        citation.get("venue"),
        str(citation["year"]) if citation.get("year") else None,
        f"arXiv:{citation['arxiv']}" if citation.get("arxiv") else None,
        f"doi:{citation['doi']}" if citation.get("doi") else None,
    ]
    text = ", ".join(part for part in parts if part)
    if not citation.get("verified", False):
        text += f" [citation not verified: {citation.get('note') or 'no source checked'}]"
    return text


# ---------------------------------------------------------------------------- the report


def build_report(run: Run, published: dict[str, list[dict]]) -> dict:
    """Everything report.json holds; deterministic for the same inputs."""
    groups = [_group(run, variant, protocol) for variant, protocol in _group_keys(run)]
    return {
        "schema": REPORT_SCHEMA,
        "run": run.info,
        "groups": groups,
        "published": {p: published.get(p, []) for p in run.protocols},
        "timings": _timings(groups),
        "figures": [path for g in groups for path in g["figures"]],
    }


def _group_keys(run: Run) -> list[tuple[str, str]]:
    """Variant full on every protocol (even with no result yet), ablations where they ran."""
    order = [*VARIANTS, *sorted(set(run.info["variants"]) - set(VARIANTS))]
    variants = [v for v in order if v in run.info["variants"]]
    return [(v, p) for v in variants for p in run.protocols if v == "full" or (v, p) in run.results]


def _group(run: Run, variant: str, protocol: str) -> dict:
    spec = run.info["protocols"][protocol]
    results = run.results.get((variant, protocol), [])
    summary = aggregate(results, spec["kind"])
    for row in summary["folds"]:
        row["result"] = run.files[(variant, protocol, row["repetition"], row["fold"])]
    expected = spec["repetitions_run"] * spec.get("folds_run", spec["folds_total"])
    notes = truncation_notes(spec, _differs(run.info), summary, expected)
    if run.info.get("exclude_flagged"):
        notes.append(_flagged_note(results))
    return {
        "variant": variant,
        "protocol": protocol,
        "version": spec["version"],
        "kind": spec["kind"],
        "folds_expected": expected,
        "truncation": notes,
        "title": table_title(protocol, spec["version"], notes),
        "aggregate": summary,
        "seconds": sum(float(r.get("seconds") or 0.0) for r in results),
        "figures": _figure_names(variant, protocol, summary, results),
    }


def _flagged_note(results: list[dict]) -> str:
    """`evaluate --exclude-flagged` trains on fewer samples than the protocol names."""
    left_out = {sid for r in results for sid in r.get("training_left_out") or []}
    return (
        f"flagged samples left out of training ({_count(len(left_out), 'sample')}; test "
        "folds as the protocol)"
    )


def _differs(info: dict) -> dict:
    return (info.get("reference") or {}).get("differs_from_paper") or {}


def truncation_notes(spec: dict, differs: dict, summary: dict, expected: int) -> list[str]:
    """Every way this row falls short of the full protocol, in words for the table title."""
    scope = []
    if spec["repetitions_run"] < spec["repetitions_total"]:
        scope.append(f"{spec['repetitions_run']} of {spec['repetitions_total']} repetitions")
    folds_run = spec.get("folds_run", spec["folds_total"])
    if folds_run < spec["folds_total"]:
        scope.append(f"{folds_run} of {spec['folds_total']} folds")
    notes = [", ".join(scope)] if scope else []
    if differs:
        keys = sorted(differs, key=lambda k: (k not in _HEADLINE, _HEADLINE.get(k, 0), k))
        pairs = ", ".join(f"{k} {_word(differs[k][0])} vs {_word(differs[k][1])}" for k in keys[:3])
        more = f" and {len(keys) - 3} more, listed under Provenance" if len(keys) > 3 else ""
        notes.append(f"configuration differs from the paper ({pairs}{more})")
    if summary["folds_failed"]:
        notes.append(f"{_count(summary['folds_failed'], 'fold')} failed")
    missing = expected - summary["folds_ok"] - summary["folds_failed"]
    if missing > 0:
        notes.append(f"{_count(missing, 'fold')} missing")
    return notes


# the differences a reader should see first in a table title
_HEADLINE = {"epochs": 0, "model.backbone": 1, "model.input_size": 2}


def _word(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def table_title(protocol: str, version: str, notes: list[str]) -> str:
    title = f"{protocol} {version}"
    return f"{title} — TRUNCATED: {'; '.join(notes)}" if notes else title


def _timings(groups: list[dict]) -> dict:
    per_protocol: dict[str, float] = {}
    for g in groups:
        per_protocol[g["protocol"]] = per_protocol.get(g["protocol"], 0.0) + g["seconds"]
    return {
        "total_seconds": sum(g["seconds"] for g in groups),
        "per_protocol_seconds": per_protocol,
        "per_group_seconds": {f"{g['variant']}/{g['protocol']}": g["seconds"] for g in groups},
    }


# ---------------------------------------------------------------------------- tables


def format_tables(report: dict) -> str:
    """The markdown the CLI prints: one table per protocol beside published rows, ablations."""
    blocks = [_protocol_table(g, report["published"].get(g["protocol"], [])) for g in _full(report)]
    ablation = _ablation_table(report)
    return "\n\n".join([*blocks, *([ablation] if ablation else [])]) + "\n"


def _full(report: dict) -> list[dict]:
    return [g for g in report["groups"] if g["variant"] == "full"]


def _protocol_table(group: dict, published: list[dict]) -> str:
    summary = group["aggregate"]
    ours = [
        "fer3d-bench (this run)",
        _accuracy_cell(summary),
        _percent(summary["macro_f1"]["mean"]),
        f"{summary['folds_ok']} / {group['folds_expected']}",
        "this run",
    ]
    rows = [ours] + [
        [p["method"], f"{p['accuracy']:.2f}", "—", "—", f"[{k}] {NOT_REPRODUCED}"]
        for k, p in enumerate(published, 1)
    ]
    header = ["method", "accuracy (%)", "macro-F1 (%)", "folds ok / run", "source"]
    notes = [f"[{k}] {_published_source(p)}" for k, p in enumerate(published, 1)]
    return "\n".join([f"### {group['title']}", "", *_table(header, rows), "", *notes])


def _accuracy_cell(summary: dict) -> str:
    """Mean ± std; with several repetitions both levels, since papers report either."""
    level = summary["accuracy"]
    if level["mean"] is None:
        return "—"
    mean = f"{100 * level['mean']:.2f}"
    if len(summary["repetitions"]) > 1:
        across, within = level["std_across_repetitions"], level["mean_std_within_repetitions"]
        within_text = f"; within-repetition std {100 * within:.2f}" if within is not None else ""
        reps = len(summary["repetitions"])
        return f"{mean} ± {100 * across:.2f} across {reps} repetitions{within_text}"
    std = level["mean_std_within_repetitions"]
    folds = summary["repetitions"][0]["folds"]
    return f"{mean} ± {100 * std:.2f} over {folds} folds" if std is not None else mean


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _published_source(row: dict) -> str:
    text = row["citation_text"]
    if not row["verified"]:
        text += " [figure not checked against the paper]"
    return text


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]


def _ablation_table(report: dict) -> str | None:
    """Rows = variant (full first), per protocol its accuracy and the change from full."""
    variants = list(dict.fromkeys(g["variant"] for g in report["groups"]))
    if len(variants) < 2:
        return None
    protocols = list(
        dict.fromkeys(g["protocol"] for g in report["groups"] if g["variant"] != "full")
    )
    cells = {(g["variant"], g["protocol"]): g for g in report["groups"]}
    header = ["variant", *[f"{p} {h}" for p in protocols for h in ("accuracy (%)", "Δ vs full")]]
    rows = [[f"{v}: {VARIANTS.get(v, v)}", *_ablation_cells(v, protocols, cells)] for v in variants]
    truncated = [f"- {g['variant']} / {g['title']}" for g in cells.values() if g["truncation"]]
    title = "### Ablations" + (" — TRUNCATED (see notes)" if truncated else "")
    return "\n".join([title, "", *_table(header, rows), *([""] + truncated if truncated else [])])


def _ablation_cells(variant: str, protocols: list[str], cells: dict) -> list[str]:
    out = []
    for protocol in protocols:
        group, full = cells.get((variant, protocol)), cells.get(("full", protocol))
        mean = group["aggregate"]["accuracy"]["mean"] if group else None
        base = full["aggregate"]["accuracy"]["mean"] if full else None
        out.append(_accuracy_cell(group["aggregate"]) if group else "—")
        show_delta = variant != "full" and mean is not None and base is not None
        out.append(f"{100 * (mean - base):+.2f} points" if show_delta else "—")
    return out


# ---------------------------------------------------------------------------- markdown


def format_markdown(report: dict) -> str:
    """report.md: the tables, then recall, repetitions, failures, timings, provenance, figures."""
    info = report["run"]
    sections = [
        f"# fer3d-bench report: {info.get('name', '')}",
        _run_line(info),
        "## Results\n\n" + format_tables(report).rstrip("\n"),
        _recall_section(report),
        _repetition_section(report),
        _failed_section(report),
        _published_section(report),
        _timing_section(report),
        _provenance_section(info),
        "## Figures\n\n" + "\n".join(f"- [{p}]({p})" for p in report["figures"]),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _run_line(info: dict) -> str:
    commit = info.get("git_commit", "unknown") + (" (dirty)" if info.get("git_dirty") else "")
    return (
        f"Preset `{info.get('preset')}`, overrides `{json.dumps(info.get('overrides', {}))}`;"
        f" fer3d-bench {info.get('fer3d_bench_version')}, git {commit}; device"
        f" {info.get('device')}; launcher {info.get('launcher')}; created {info.get('created')}."
        f" Published rows are copied from the papers cited and are not reproduced by fer3d-bench."
    )


def _recall_section(report: dict) -> str:
    blocks = ["## Per-class recall (variant full, row-normalised confusion summed over folds)"]
    for g in _full(report):
        summary = g["aggregate"]
        support = [sum(row) for row in summary["confusion"]["counts"]]
        rows = [
            [c, _percent(summary["recall"][c]), str(n)]
            for c, n in zip(summary["classes"], support, strict=True)
        ]
        blocks.append(
            f"### {g['protocol']}\n\n" + "\n".join(_table(["class", "recall (%)", "samples"], rows))
        )
    return "\n\n".join(blocks)


def _repetition_section(report: dict) -> str:
    blocks = ["## Per repetition (fold scores averaged within each repetition)"]
    for g in report["groups"]:
        rows = [
            [
                str(r["repetition"]),
                str(r["folds"]),
                _mean_std(r["accuracy"]),
                _mean_std(r["macro_f1"]),
            ]
            for r in g["aggregate"]["repetitions"]
        ]
        header = ["repetition", "folds ok", "accuracy (%)", "macro-F1 (%)"]
        blocks.append(f"### {g['variant']} / {g['protocol']}\n\n" + "\n".join(_table(header, rows)))
    return "\n\n".join(blocks)


def _mean_std(spread: dict) -> str:
    if spread["mean"] is None:
        return "—"
    std = f" ± {100 * spread['std']:.2f}" if spread["std"] is not None else ""
    return f"{100 * spread['mean']:.2f}{std}"


def _failed_section(report: dict) -> str:
    rows = [
        [g["variant"], g["protocol"], str(f["repetition"]), str(f["fold"]), str(f["reason"])]
        for g in report["groups"]
        for f in g["aggregate"]["failed"]
    ]
    if not rows:
        return "## Failed folds\n\nNone."
    header = ["variant", "protocol", "repetition", "fold", "reason"]
    return "## Failed folds\n\n" + "\n".join(_table(header, rows))


def _published_section(report: dict) -> str:
    rows = [
        [protocol, p["method"], f"{p['accuracy']:.2f}", p["protocol_as_stated"], p["note"] or ""]
        for protocol, published in report["published"].items()
        for p in published
    ]
    header = ["protocol", "method", "accuracy (%)", "protocol as the paper states it", "note"]
    return f"## Published rows ({NOT_REPRODUCED})\n\n" + "\n".join(_table(header, rows))


def _timing_section(report: dict) -> str:
    timings = report["timings"]
    rows = [[key, f"{s:.1f}"] for key, s in timings["per_group_seconds"].items()]
    rows.append(["total", f"{timings['total_seconds']:.1f}"])
    return "## Timings (sum of fold seconds)\n\n" + "\n".join(
        _table(["variant/protocol", "seconds"], rows)
    )


def _provenance_section(info: dict) -> str:
    lines = ["## Provenance", ""]
    dataset = info.get("dataset", {})
    lines.append(f"- dataset `{dataset.get('path')}`, fingerprint `{dataset.get('fingerprint')}`")
    for name, spec in info["protocols"].items():
        lines.append(
            f"- protocol {name} {spec['version']} ({spec['kind']}),"
            f" manifest `{spec.get('manifest')}` sha256 `{spec.get('manifest_sha256')}`"
        )
    for name, config in info["variants"].items():
        settings = json.dumps(config, sort_keys=True)
        lines.append(f"- variant {name}: seed {config.get('seed')}, config `{settings}`")
    for key, value in sorted(_differs(info).items()):
        lines.append(f"- differs from the paper: {key} {_word(value[0])} vs {_word(value[1])}")
    environment = ", ".join(f"{k} {v}" for k, v in sorted(info.get("environment", {}).items()))
    lines.append(f"- environment: {environment}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- figures


def _figure_names(variant: str, protocol: str, summary: dict, results: list[dict]) -> list[str]:
    names = []
    if summary["folds_ok"]:
        names.append(f"figures/{variant}_{protocol}_confusion.png")
    if any(r.get("history") for r in results):
        names.append(f"figures/{variant}_{protocol}_curves.png")
    return names


def _write_figures(run: Run, report: dict) -> list[Path]:
    (run.path / "figures").mkdir(exist_ok=True)
    written = []
    for g in report["groups"]:
        for name in g["figures"]:
            target = run.path / name
            if name.endswith("_confusion.png"):
                fig = confusion_figure(g["aggregate"], f"{g['variant']} / {g['protocol']}")
            else:
                fig = curves_figure(run.results[(g["variant"], g["protocol"])], g["protocol"])
            written.append(save_figure(fig, target))
    return written


def confusion_figure(summary: dict, label: str):
    """Row-normalised summed confusion with class names on both axes and values in the cells."""
    classes, matrix = summary["classes"], np.asarray(summary["confusion"]["normalised"])
    size = 1.2 + 0.75 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{label}: summed over {summary['folds_ok']} folds", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def curves_figure(results: list[dict], protocol: str):
    """Per fold, thin: train loss and validation accuracy by epoch; their mean, bold."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in zip(
        axes, ("loss_total", "val_accuracy"), ("train loss", "validation accuracy"), strict=True
    ):
        curves = [_curve(r.get("history") or [], key) for r in results]
        for epochs, values in curves:
            ax.plot(epochs, values, linewidth=0.6, alpha=0.4, color="tab:blue")
        epochs, means = _mean_curve(curves)
        ax.plot(epochs, means, linewidth=2.2, color="tab:red", label="mean over folds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{protocol}: {label}, {len(curves)} folds (thin)", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def _curve(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Finite points only: a fold that diverged (nan loss) must not turn the mean into nan."""
    points = [(e["epoch"], float(e[key])) for e in history if e.get(key) is not None]
    points = [(epoch, value) for epoch, value in points if math.isfinite(value)]
    return [p[0] for p in points], [p[1] for p in points]


def _mean_curve(curves: list[tuple[list[int], list[float]]]) -> tuple[list[int], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for epochs, values in curves:
        for epoch, value in zip(epochs, values, strict=True):
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    return epochs, [statistics.fmean(by_epoch[e]) for e in epochs]


# ---------------------------------------------------------------------------- writing


def write_report(run_dir: Path) -> ReportPaths:
    """report.md, report.json and the figures of an evaluation run folder, each atomically."""
    run = load_run(Path(run_dir))
    report = build_report(run, load_published())
    figures = _write_figures(run, report)
    json_path, md_path = run.path / "report.json", run.path / "report.md"
    text = json.dumps(report, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    _write_text(json_path, text + "\n")
    _write_text(md_path, format_markdown(report))
    return ReportPaths(markdown=md_path, json=json_path, figures=figures, report=report)


def _write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
