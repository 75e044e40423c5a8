"""The inflation experiment: one model under the paper's stated conditions and its code's.

`fer3d-bench reproduce inflation` trains the reference model on a protocol dealt by subject and
on the same protocol dealt by sample (as the authors' code deals it), on the same data. Every
fold records its last epoch and its best test epoch, so three numbers come from one run:

- subject folds, last epoch: what the paper's text describes, and what fer3d-bench reports;
- sample folds, last epoch: the leakage alone (the same person in train and test);
- sample folds, best test epoch: the authors' code's conditions (leakage and an epoch chosen on
  the test fold).

Each is the accuracy pooled over every test prediction of the samples both protocols tested
(each sample is tested once per repetition under either deal), so the differences are paired
by sample, and their 95% intervals come from the subject bootstrap (`compare.subject_bootstrap`):
test subjects resampled with replacement, one draw for both sides. The published number is
printed beside them with its conditions, never with a difference: its data and conditions are
not ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench.compare import Interval, subject_bootstrap
from fer3d_bench.errors import ReportError
from fer3d_bench.io import atomic_path
from fer3d_bench.records.conditions import Conditions
from fer3d_bench.records.io import write_json
from fer3d_bench.report.conditions import group_conditions
from fer3d_bench.report.load import Run, load_run
from fer3d_bench.report.published import load_tables
from fer3d_bench.sources import subject_of

INFLATION_JSON = "inflation.json"
INFLATION_MD = "inflation.md"
FULL = "full"
RESAMPLES = 10_000
SEED = 0
# (name, protocol role, epoch selection, what it stands for)
SETTINGS = (
    ("subject-last", "subject", "last", "folds by subject, last epoch (the paper's text; ours)"),
    ("sample-last", "sample", "last", "folds by sample, last epoch (the leakage alone)"),
    (
        "sample-best-test",
        "sample",
        "best-test",
        "folds by sample, best test epoch (the authors' code: leakage and an optimistic epoch)",
    ),
)


@dataclass
class Setting:
    name: str
    words: str
    protocol: str
    selection: str
    accuracy: float
    predictions: int
    conditions: Conditions

    def to_json(self) -> dict:
        return {**self.__dict__, "conditions": self.conditions.to_json()}


@dataclass
class Inflation:
    settings: list[Setting]
    differences: dict[str, Interval]  # "<setting> - subject-last" -> bootstrap interval
    samples: int  # samples tested under both deals
    published: list[dict] = field(default_factory=list)  # the paper's rows, with conditions

    def to_json(self) -> dict:
        return {
            "schema": "fer3d-bench/inflation/1",
            "settings": [s.to_json() for s in self.settings],
            "differences": {k: v.to_json() for k, v in self.differences.items()},
            "samples": self.samples,
            "published": self.published,
        }


def measure_inflation(
    run_dir: Path, subject: str, sample: str, table: str | None = None
) -> Inflation:
    """The three settings' pooled accuracies on the samples both protocols tested, the two
    inflations against subject folds with their intervals, and the published row."""
    run = load_run(Path(run_dir))
    protocols = {"subject": subject, "sample": sample}
    correct = {
        name: _correctness(run, protocols[role], selection) for name, role, selection, _ in SETTINGS
    }
    shared = set.intersection(*(set(c) for c in correct.values()))
    if not shared:
        raise ReportError(f"{run_dir}: no sample was tested under both {subject} and {sample}")
    correct = {name: {s: c[s] for s in sorted(shared)} for name, c in correct.items()}
    settings = [
        _setting(run, name, words, protocols[role], selection, correct[name])
        for name, role, selection, words in SETTINGS
    ]
    base = correct["subject-last"]
    differences = {
        f"{name} - subject-last": subject_bootstrap(
            base, correct[name], subject_of, RESAMPLES, SEED
        )
        for name, *_ in SETTINGS[1:]
    }
    return Inflation(settings, differences, len(shared), _published(table, subject))


def report_inflation(run_dir: Path, experiment: dict) -> str:
    """For a run of an experiment with an `[inflation]` table: measure, write inflation.json
    and inflation.md in the run folder, and return the text to print."""
    pair = experiment["inflation"]
    inflation = measure_inflation(run_dir, pair["subject"], pair["sample"], experiment["table"])
    _, markdown = write_inflation(run_dir, inflation)
    return f"{format_inflation(inflation)}\n(written to {markdown})"


def write_inflation(run_dir: Path, inflation: Inflation) -> tuple[Path, Path]:
    """inflation.json and inflation.md in the run folder, atomically."""
    run_dir = Path(run_dir)
    json_path = write_json(run_dir / INFLATION_JSON, inflation.to_json())
    md_path = run_dir / INFLATION_MD
    with atomic_path(md_path) as tmp:
        tmp.write_text(f"# Inflation\n\n```\n{format_inflation(inflation)}\n```\n")
    return json_path, md_path


def format_inflation(inflation: Inflation) -> str:
    """The three numbers, the two inflations with their intervals, then the published row."""
    lines = [
        f"Inflation, on the {inflation.samples:,} samples tested under both deals (accuracy "
        "pooled over every test prediction):",
        "",
    ]
    for s in inflation.settings:
        mark = "  (optimistic)" if s.conditions.optimistic else ""
        lines.append(f"  {100 * s.accuracy:6.2f} %  {s.words}{mark}")
    lines.append("")
    for name, interval in inflation.differences.items():
        lines.append(f"  {name}: {_interval(interval)}")
    lines.append("")
    for row in inflation.published:
        lines.append(
            f"  published: {row['printed']} % — {row['method']} ({row['source']}); conditions: "
            f"{row['conditions_words']}; not comparable with ours: other data and conditions, "
            "no difference is given"
        )
    first = next(iter(inflation.differences.values()), None)
    if first is not None:
        lines.append(
            f"  intervals: 95% percentile bootstrap over test subjects ({first.resamples:,} "
            f"resamples, seed {first.seed}, {first.subjects} subjects)"
        )
    return "\n".join(lines)


def _interval(interval: Interval) -> str:
    if interval.estimate is None:
        return f"— ({interval.reason})"
    low, high = interval.low, interval.high
    span = "—" if low is None else f"[{100 * low:+.2f}, {100 * high:+.2f}]"
    return f"{100 * interval.estimate:+.2f} points, 95% interval {span}"


def _correctness(run: Run, protocol: str, selection: str) -> dict[str, list[bool]]:
    """Sample id -> its correctness in each repetition, from the chosen epoch of each ok fold."""
    results = run.results.get((FULL, protocol), [])
    if not any(r.ok for r in results):
        raise ReportError(f"{run.path}: no finished fold of {protocol}")
    out: dict[str, list[bool]] = {}
    for result in results:
        if not result.ok:
            continue
        predictions = result.selected(selection)
        if predictions is None:
            raise ReportError(
                f"{run.path / run.file_of(result)}: no {selection} epoch recorded (a fold of "
                "fer3d-bench before 0.16); run it again in a new folder"
            )
        for sample, given in predictions.items():
            out.setdefault(sample, []).append(given["true"] == given["pred"])
    return out


def _setting(
    run: Run, name: str, words: str, protocol: str, selection: str, correct: dict
) -> Setting:
    hits = sum(sum(c) for c in correct.values())
    total = sum(len(c) for c in correct.values())
    conditions = group_conditions(run.info, protocol, FULL)
    conditions.epoch_selection = selection
    return Setting(name, words, protocol, selection, hits / total, total, conditions)


def _published(table: str | None, protocol: str) -> list[dict]:
    """The paper's own rows of `table` on `protocol`, with their conditions in words."""
    if table is None:
        return []
    rows = load_tables()[table]["rows"]
    out = []
    for row in rows:
        if row.get("variant") != FULL:
            continue
        conditions = Conditions.from_json(row.get("conditions") or {}, "published.toml")
        printed = row.get("printed") or f"{row['accuracy']}"
        out.append(
            {
                "method": row["method"],
                "printed": printed,
                "source": row["source"],
                "conditions": conditions.to_json(),
                "conditions_words": conditions.words(),
                "protocol": protocol,
            }
        )
    return out
