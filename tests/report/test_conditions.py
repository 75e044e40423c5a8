"""Every number with its conditions: our groups, published rows (with their sources) and the
paper's table of `reproduce`, which gives a delta only where the conditions compare.

Published tables here are small TOML files of the schema of `published.toml`, written by hand.
"""

import json
from pathlib import Path

import pytest
from test_report import TWO, A, H, protocol_spec, result, write_run

from fer3d_bench.errors import ReportError
from fer3d_bench.records.conditions import NOT_STATED, Conditions
from fer3d_bench.records.io import SchemaMismatch
from fer3d_bench.records.report import Report, read_report
from fer3d_bench.report import write_report
from fer3d_bench.report.build import build_report
from fer3d_bench.report.conditions import LEAKY_NOTE, OPTIMISTIC_NOTE
from fer3d_bench.report.load import load_run
from fer3d_bench.report.markdown import format_markdown
from fer3d_bench.report.published import load_published, load_tables
from fer3d_bench.report.tables import format_tables

CITATIONS = """
[citations.paper]
authors = "A. Author, B. Author"
title = "A paper"
year = 2024

[citations.other]
authors = "C. Other"
year = 2021
"""
# the paper's row as its authors' code runs it: by sample, best test epoch
CODE = """
[conditions.code]
unit = { value = "sample", source = "code: train.py:88" }
epoch_selection = { value = "best-test", source = "code: train.py:300" }
repetitions = { value = "100 stated; 10 in the code", source = "Sec. III-E; code: train.py:85" }
folds = { value = 5, source = "Sec. III-E" }
epochs = { value = 20, source = "Sec. III-E" }
test_seen = { value = "yes: the epoch of best test accuracy", source = "code: train.py:300" }
data = { value = "all 2,500 samples", source = "Sec. III-A" }
"""
# conditions that are ours: by subject, the last epoch, nothing tuned on a test fold
OURS = """
[conditions.ours]
unit = { value = "subject", source = "a test" }
epoch_selection = { value = "last", source = "a test" }
test_seen = { value = "no", source = "a test" }
"""


def table_toml(conditions: str = "code", extra_conditions: str = "", rows: str = "") -> str:
    """A published file of one comparison table on bu3dfe-full: the paper's row (87.6, as
    printed) with `conditions`, and another paper's row without any (62.50)."""
    reference = f'conditions = "{conditions}"\n' if conditions else ""
    return (
        CITATIONS
        + CODE
        + OURS
        + extra_conditions
        + f"""
[tables.V]
title = "BU-3DFE, full 5-fold"
printed_in = "paper"
where = "Table V"
protocol = "bu3dfe-full"
kind = "comparison"
protocol_as_stated = "all 2,500 samples, 5 folds"

[[tables.V.rows]]
method = "the paper's network"
accuracy = 87.6
citation = "paper"
variant = "full"
{reference}
[[tables.V.rows]]
method = "another network"
accuracy = 62.50
citation = "other"
{rows}"""
    )


def published_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "published.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------- published rows


def test_published_rows_keep_their_printed_digits_conditions_and_sources(tmp_path):
    rows = load_published(published_file(tmp_path, table_toml()))["bu3dfe-full"]
    paper, other = rows
    # one unit: a fraction, as our aggregates are; the paper's digits beside it, as printed
    assert (paper["accuracy"], paper["printed"]) == (0.876, "87.6")
    assert (other["accuracy"], other["printed"]) == (0.625, "62.50")
    stated = Conditions.from_json(paper["conditions"], "row")
    assert (stated.unit, stated.epoch_selection, stated.folds) == ("sample", "best-test", 5)
    assert stated.repetitions == "100 stated; 10 in the code"
    assert stated.sources["unit"] == "code: train.py:88"
    assert stated.sources["data"] == "Sec. III-A"
    assert stated.weights == NOT_STATED and "weights" not in stated.sources
    # a row that names no conditions states none
    assert Conditions.from_json(other["conditions"], "row") == Conditions()


def table_v_with(line: str) -> str:
    return table_toml(extra_conditions=f"\n[conditions.bad]\n{line}\n", conditions="bad")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (table_v_with('unit = { value = "person", source = "x" }'), "unit.value must be one of"),
        (table_v_with('units = { value = "sample", source = "x" }'), "unknown keys ['units']"),
        (table_v_with("epochs = { value = 20 }"), "epochs must be { value = ..., source"),
        (table_v_with('epochs = { value = 20, source = "" }'), "epochs.source must be a non-empty"),
        (table_v_with('epochs = { value = -1, source = "x" }'), "epochs.value must be a non-neg"),
        (table_v_with('folds = { value = true, source = "x" }'), "folds.value must be a non-neg"),
        (table_v_with('input_size = { value = 2.5, source = "x" }'), "input_size.value must be"),
        (table_v_with('data = { value = 3, source = "x" }'), "data.value must be a string"),
        (table_v_with('epoch_selection = "last"'), "epoch_selection must be { value"),
        (table_v_with('epochs = { value = 1, source = "x", note = "y" }'), "epochs must be"),
        (table_toml(conditions="missing"), "names unknown conditions 'missing'"),
        (table_toml(rows="conditions = 4\n"), "conditions must be a string, found 4"),
        (table_toml(rows="colour = 4\n"), "has unknown keys ['colour']"),
        (table_toml().replace("accuracy = 62.50", 'accuracy = "62.50"'), "must be a number"),
        (table_toml().replace("accuracy = 62.50", "accuracy = 162.5"), "is not a percentage"),
        (table_toml().replace("accuracy = 62.50", "accuracy = nan"), "must be a number"),
        (table_toml() + "\n[conditions.code]\n", "not valid TOML"),  # declared twice
        ("conditions = 3\n" + CITATIONS, "[conditions] must hold tables"),
    ],
)
def test_a_hostile_published_file_is_refused_in_one_line(tmp_path, text, named):
    path = published_file(tmp_path, text)
    with pytest.raises(ReportError) as refused:
        load_tables(path)
    message = str(refused.value)
    assert named in message
    assert message.startswith(f"{path}: ") and "\n" not in message
    if "[conditions.bad]" in text and "must hold tables" not in named:
        assert "[conditions.bad]" in message  # names the table


def test_an_unreadable_published_file_is_one_line(tmp_path):
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "latin1.toml").write_bytes(b'title = "caf\xe9"\n')
    for path, named in [
        (tmp_path / "absent.toml", "not found"),
        (tmp_path / "folder.toml", "cannot read the published table"),
        (tmp_path / "latin1.toml", "not valid TOML"),
    ]:
        with pytest.raises(ReportError) as refused:
            load_tables(path)
        assert named in str(refused.value) and "\n" not in str(refused.value)


def test_the_papers_file_reads_and_prints_87_6_as_the_paper_does():
    row = load_published()["bu3dfe-full"][0]
    assert (row["printed"], row["accuracy"]) == ("87.6", 0.876)
    assert all(
        0 <= r["accuracy"] <= 1 and r["printed"] for t in load_tables().values() for r in t["rows"]
    )


# ------------------------------------------------------------------------- runs


def by_sample_run(tmp_path, **entry):
    """A bu3dfe-full run of 1 repetition x 2 folds, its conditions as `entry` records them;
    each fold's last epoch 2/4 right, its best test epoch 4/4."""
    spec = {**protocol_spec("kfold", TWO, 1, 5, 1, 2), **entry}
    pairs = [(A, A), (A, H), (H, H), (H, A)]  # last epoch: 2/4
    results = []
    for fold in (0, 1):
        body = result("full", "bu3dfe-full", 0, fold, pairs)
        best = {s: {"true": p["true"], "pred": p["true"]} for s, p in body["predictions"].items()}
        body["best_test"] = {"epoch": 2, "accuracy": 1.0, "predictions": best}
        results.append(body)
    return write_run(tmp_path / "run", {"bu3dfe-full": spec}, results)


LEAKY = {
    "unit": "sample",
    "epoch_selection": "best-test",
    "manifest_published": False,
    "subjects": 12,
    "samples": 300,
}


def test_a_run_records_its_conditions_and_its_title_names_how_they_differ(tmp_path):
    paths = write_report(by_sample_run(tmp_path, **LEAKY))
    report = json.loads(paths.json.read_text())
    group = report["groups"][0]
    conditions = Conditions.from_json(group["conditions"], paths.json)
    assert (conditions.unit, conditions.epoch_selection) == ("sample", "best-test")
    assert (conditions.subjects, conditions.samples, conditions.published_manifest) == (
        12,
        300,
        False,
    )
    assert (conditions.repetitions, conditions.folds, conditions.epochs) == (1, 2, 3)
    # the epoch was chosen on the test fold: seen by a choice, but nothing was tuned
    assert conditions.test_seen.startswith("yes: the epoch reported for each fold is its best")
    assert "hyperparameters tuned" not in group["title"]
    # the best test epoch is scored: 4/4 in each fold
    assert group["aggregate"]["accuracy"]["mean"] == 1.0
    # bu3dfe-full 1.0.0 as fer3d-bench publishes it: 100 subjects, 2,500 samples
    data = (
        "not the published manifest: 12 subjects, 300 samples (the published bu3dfe-full "
        "1.0.0: 100 subjects, 2,500 samples)"
    )
    assert f"TRUNCATED: {data}; {LEAKY_NOTE}; {OPTIMISTIC_NOTE}; 2 of 5 folds" in group["title"]
    markdown = paths.markdown.read_text()
    assert f"### {group['title']}" in markdown
    assert "## Conditions (what each number was obtained under)" in markdown
    assert f"- full / bu3dfe-full: {conditions.words()}" in markdown
    ours_line = next(line for line in markdown.splitlines() if "fer3d-bench (this run)" in line)
    assert conditions.words() in ours_line


def test_a_published_row_is_marked_with_what_keeps_it_from_comparing(tmp_path):
    published = load_published(published_file(tmp_path, table_toml()))
    run = load_run(by_sample_run(tmp_path))  # by subject, last epoch (as recorded before 0.16)
    text = format_tables(build_report(run, published))
    paper = next(line for line in text.splitlines() if "the paper's network" in line)
    assert "| 87.6 (published) |" in paper and "87.60" not in paper
    assert (
        "| no: folds by subject (no person in both train and test) vs folds by sample: the "
        "same person in train and test; the last epoch vs the epoch with the best test " in paper
    )
    other = next(line for line in text.splitlines() if "another network" in line)
    assert "| 62.50 (published) | — | — | not stated | no: how folds were dealt not stated" in other
    # macro-F1 with its spread, as accuracy: folds 2/4 right (F1 1/2 each) -> 50.00 ± 0.00
    ours = next(line for line in text.splitlines() if "fer3d-bench (this run)" in line)
    assert "| 50.00 ± 0.00 over 2 folds | 50.00 ± 0.00 over 2 folds |" in ours


def test_report_json_holds_one_unit_and_older_percent_rows_still_read(tmp_path):
    paths = write_report(by_sample_run(tmp_path))
    data = json.loads(paths.json.read_text())
    rows = [row for rows in data["published"].values() for row in rows]
    assert rows and all(0 <= row["accuracy"] <= 1 for row in rows)
    assert {row["printed"] for row in rows} == {"87.6"}  # bu3dfe-full: Table V
    assert 0 <= data["groups"][0]["aggregate"]["accuracy"]["mean"] <= 1
    # a report of 0.15: published rows in percent, no printed digits, no conditions
    for row in rows:
        row["accuracy"] = 87.6
        del row["printed"], row["conditions"]
    old = Report.from_json(data, paths.json)
    assert [(r["accuracy"], r["printed"]) for r in old.published["bu3dfe-full"]] == [
        (0.876, "87.6")
    ]
    assert "| 87.6 (published) |" in format_tables(old)
    assert "| not stated |" in format_tables(old)
    # and a row of this version whose accuracy is not a fraction is refused
    data["published"]["bu3dfe-full"][0] |= {"accuracy": 87.6, "printed": "87.6"}
    with pytest.raises(SchemaMismatch, match=r"published.bu3dfe-full\[0\].accuracy must be a frac"):
        Report.from_json(data, paths.json)


def test_a_report_before_0_16_has_no_group_conditions_and_says_so(tmp_path):
    paths = write_report(by_sample_run(tmp_path))
    data = json.loads(paths.json.read_text())
    del data["groups"][0]["conditions"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = read_report(tmp_path / "old.json")
    assert old.groups[0].conditions is None
    text = format_markdown(old)
    assert "not recorded (a report before 0.16)" in text
    assert "not known: this run's conditions are not recorded" in text


# ------------------------------------------------------------------------- reproduce


def experiment_run(tmp_path, name, **entry):
    folder = by_sample_run(tmp_path / name, **entry)
    info = json.loads((folder / "run.json").read_text())
    info["experiment"] = {"name": "table-v", "version": "1.0.0", "title": "Table V", "table": "V"}
    (folder / "run.json").write_text(json.dumps(info))
    return load_run(folder)


def test_reproduce_gives_no_delta_where_the_conditions_differ(tmp_path):
    path = published_file(tmp_path, table_toml())
    run = experiment_run(tmp_path, "ours")  # by subject, the last epoch
    report = build_report(run, load_published(path), load_tables(path))
    paper, other = report.experiment["rows"]
    assert paper["ours"] == 0.5 and paper["delta_points"] is None
    assert paper["reproduced"].startswith("not comparable: folds by subject (no person in both")
    assert "the last epoch vs the epoch with the best test accuracy" in paper["reproduced"]
    assert paper["differences"] and paper["reproduced"].endswith(paper["differences"][-1])
    assert Conditions.from_json(paper["our_conditions"], "ours").unit == "subject"
    assert Conditions.from_json(paper["conditions"], "paper").unit == "sample"
    assert "in part" not in paper["reproduced"]
    assert other["delta_points"] is None and other["reproduced"].startswith("no: another")
    line = next(line for line in format_tables(report).splitlines() if "`full`" in line)
    assert "| 87.6 (published) | 50.00 ± 0.00 over 2 folds | — | not comparable: " in line
    assert "folds by sample: the same person in train and test" in line  # the paper's conditions
    assert "folds by subject (no person in both train and test); epoch: the last" in line  # ours


def test_reproduce_gives_a_delta_where_the_conditions_compare(tmp_path):
    path = published_file(tmp_path, table_toml(conditions="ours"))
    run = experiment_run(tmp_path, "same")
    report = build_report(run, load_published(path), load_tables(path))
    paper = report.experiment["rows"][0]
    # ours 2/4 = 50 % against 87.6 %: -37.6 points
    assert paper["delta_points"] == pytest.approx(-37.6)
    assert paper["differences"] == []
    assert paper["reproduced"] == "in part: 2 of 5 folds; configuration differs from the paper"
    assert "| -37.60 |" in format_tables(report)
    # a run by sample with the best test epoch compares with the code's row (both saw the test
    # folds through the epoch's choice); its title still names both, the row only what else
    # falls short
    code = table_toml(conditions="code").replace(
        'data = { value = "all 2,500 samples", source = "Sec. III-A" }\n', ""
    )
    path = published_file(tmp_path, code)
    leaky = {k: v for k, v in LEAKY.items() if k in ("unit", "epoch_selection")}
    run = experiment_run(tmp_path, "leaky", **leaky)
    report = build_report(run, load_published(path), load_tables(path))
    paper = report.experiment["rows"][0]
    assert paper["delta_points"] == pytest.approx(100 - 87.6)
    assert LEAKY_NOTE in report.groups[0].title and OPTIMISTIC_NOTE in report.groups[0].title
    assert paper["reproduced"] == "in part: 2 of 5 folds; configuration differs from the paper"


# ------------------------------------------------------------------------- the tuned line


def test_the_tuned_lines_validation_accuracy_is_a_percentage(tmp_path):
    folder = by_sample_run(tmp_path)
    info = json.loads((folder / "run.json").read_text())
    tuned = {"protocol": "bu3dfe-full", "repetition": 0, "fold": 0, "study": "s.db"}
    info["config_file"] = {"file": "c.toml", "sha256": "c" * 64, "tuned": tuned | {"value": 0.168}}
    (folder / "run.json").write_text(json.dumps(info))
    paths = write_report(folder)
    markdown = paths.markdown.read_text()
    assert "validation accuracy 16.80 %)" in markdown and "0.168" not in markdown
    group = json.loads(paths.json.read_text())["groups"][0]
    assert group["conditions"]["test_seen"].startswith("yes: hyperparameters tuned on")
    assert "hyperparameters tuned on subjects of its own test folds" in group["title"]


def test_data_differ_only_where_the_manifests_do():
    sha, other = "a" * 64, "b" * 64
    mine = Conditions(unit="subject", epoch_selection="last", test_seen="no", data=sha)
    unpublished = {"published_manifest": False, "subjects": 12, "samples": 300}
    # two runs on one unpublished manifest have the same data
    assert (
        Conditions(**{**mine.__dict__, **unpublished}).differences(
            Conditions(**{**mine.__dict__, **unpublished})
        )
        == []
    )
    # another manifest, or one of them not the published manifest, is other data
    assert mine.differences(Conditions(**{**mine.__dict__, "data": other})) == [
        "other data: different manifests"
    ]
    assert mine.differences(Conditions(**{**mine.__dict__, **unpublished, "data": other})) == [
        "other data: not the published manifest"
    ]
