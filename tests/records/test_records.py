"""Records: the one JSON/TOML reader's typed errors, schema checks, and the round trips."""

import copy
import json
import shutil
from pathlib import Path

import pytest

from fer3d_bench.errors import Fer3dError
from fer3d_bench.records.group import FailedFold, ReportGroup
from fer3d_bench.records.io import (
    RecordDamaged,
    RecordNotFound,
    SchemaMismatch,
    json_text,
    read_json,
    read_jsonl,
    read_toml,
    write_json,
)
from fer3d_bench.records.report import Report, read_report
from fer3d_bench.records.result import FoldResult, read_result
from fer3d_bench.records.run import RUN_SCHEMA, RunInfo, read_run_info
from fer3d_bench.report import write_report

FIXTURE = Path(__file__).parents[1] / "data" / "run-0.7.0"  # as 0.7.0 wrote it (make.py)


def test_read_json_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(RecordNotFound, match="absent.json: run.json not found"):
        read_json(tmp_path / "absent.json", what="run.json")
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"schema": "fer3d-bench/run/1", "vari')
    with pytest.raises(RecordDamaged, match="truncated.json: unreadable or truncated JSON"):
        read_json(truncated)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(SchemaMismatch, match="expected a JSON object, found list"):
        read_json(listed)
    other = tmp_path / "other.json"
    other.write_text('{"schema": "someone-else/1"}')
    with pytest.raises(SchemaMismatch, match="expected schema 'fer3d-bench/run/1'"):
        read_json(other, RUN_SCHEMA)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RecordDamaged, match="binary.json"):
        read_json(binary)


def test_read_toml_and_jsonl_errors(tmp_path):
    with pytest.raises(RecordNotFound, match="none.toml: config file not found"):
        read_toml(tmp_path / "none.toml", what="config file")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(RecordDamaged, match="bad.toml: not valid TOML"):
        read_toml(bad)
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epo')
    with pytest.raises(RecordDamaged, match="metrics.jsonl: line 4 is not valid JSON"):
        read_jsonl(log)
    assert read_jsonl(tmp_path / "never-written.jsonl") == []


def test_write_json_is_canonical_and_atomic(tmp_path):
    target = write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary left behind
    # JSON has no NaN: a non-finite number is written as null, in the report as everywhere
    nan = write_json(tmp_path / "nan.json", {"x": float("nan"), "y": [float("-inf")]}, strict=True)
    assert json.loads(nan.read_text(), parse_constant=_refuse) == {"x": None, "y": [None]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "nan.json"]


def _refuse(token):
    raise AssertionError(f"{token} is not JSON")


def test_run_info_round_trip_keeps_unknown_keys_and_fills_old_ones(tmp_path):
    data = json.loads((FIXTURE / "run.json").read_text())
    info = RunInfo.from_json(data, FIXTURE / "run.json")
    assert info.to_json() == data  # every key of 0.7.0, nothing added or lost
    assert info.protocols["bu3dfe-legacy"].expected_folds == 2
    newer = {**data, "written_by_a_newer_minor": {"x": 1}}
    assert RunInfo.from_json(newer, Path("run.json")).to_json() == newer
    older = {k: v for k, v in data.items() if k not in ("backbone_weights", "exclude_flagged")}
    old = RunInfo.from_json(older, Path("run.json"))
    assert old.backbone_weights is None and old.exclude_flagged is False
    broken = {**data, "protocols": {"p": {"version": "1.0.0", "kind": "kfold"}}}
    with pytest.raises(SchemaMismatch, match=r"run.json: protocols.p lacks 'repetitions_total'"):
        RunInfo.from_json(broken, Path("run.json"))
    with pytest.raises(SchemaMismatch, match="not a fer3d-bench run"):
        RunInfo.from_json({**data, "schema": "fer3d-bench/result/1"}, Path("run.json"))


def test_fold_result_validation_and_renamed_history(tmp_path):
    path = FIXTURE / "bu3dfe-legacy" / "0" / "1" / "result.json"
    result = read_result(path)
    assert result.position == (0, 1) and result.ok
    raw = json.loads(path.read_text())
    assert "val_accuracy" in raw["history"][0]  # as 0.7.0 named the test fold's accuracy
    assert result.history[0]["test_accuracy"] == raw["history"][0]["val_accuracy"]
    assert "val_accuracy" not in result.history[0]
    no_job = {**raw, "job": {"variant": "full"}}
    with pytest.raises(SchemaMismatch, match="the 'job' block must hold"):
        FoldResult.from_json(no_job, path)
    with pytest.raises(SchemaMismatch, match="status ok but no predictions"):
        FoldResult.from_json({**raw, "predictions": {}}, path)


def test_a_run_folder_written_by_0_7_reports_byte_for_byte_as_checked_in(tmp_path):
    """0.7.0's results, reported as this version reports them (the files make.py describes):
    any change to a report's bytes shows here, and is made on purpose or not at all."""
    folder = shutil.copytree(FIXTURE, tmp_path / "run", ignore=shutil.ignore_patterns("make.py"))
    (folder / "report.json").unlink()
    (folder / "report.md").unlink()
    paths = write_report(folder)
    assert paths.json.read_bytes() == (FIXTURE / "report.json").read_bytes()
    assert paths.markdown.read_bytes() == (FIXTURE / "report.md").read_bytes()
    again = read_report(paths.json)
    assert again.to_json() == json.loads(paths.json.read_text())
    assert read_run_info(folder / "run.json").fer3d_bench_version == "0.7.0"
    title = again.groups[0].title  # no weights; the differences as 0.7.0 recorded them
    assert "not pretrained" in title and "epochs 1 vs 30" in title


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """report.json of a copy of the 0.7.0 run folder, as this version reports it."""
    folder = shutil.copytree(
        FIXTURE, tmp_path_factory.mktemp("reported") / "run", ignore=shutil.ignore_patterns("*.py")
    )
    return write_report(folder).json


def test_a_real_report_round_trips_through_the_typed_groups(reported):
    data = json.loads(reported.read_text())
    report = Report.from_json(data, reported)
    assert report.to_json() == data
    assert json_text(report.to_json(), strict=True) == reported.read_text()  # the same bytes
    (group,) = report.groups
    assert isinstance(group, ReportGroup) and group.key == ("full", "bu3dfe-legacy")
    summary = data["groups"][0]["aggregate"]
    assert group.aggregate.folds_ok == 2 and group.aggregate.classes == summary["classes"]
    assert summary["accuracy"]["mean"] is not None
    assert group.mean_accuracy == summary["accuracy"]["mean"]
    assert [row.result for row in group.aggregate.folds] == [
        "bu3dfe-legacy/0/0/result.json",
        "bu3dfe-legacy/0/1/result.json",
    ]
    assert report.failed_folds() == []


def test_failed_folds_name_their_folder_as_the_run_folder_lays_them_out(reported):
    data = json.loads(reported.read_text())
    full = data["groups"][0]
    full["aggregate"]["failed"] = [{"repetition": 0, "fold": 1, "reason": "loss became nan"}]
    ablation = {**copy.deepcopy(full), "variant": "rgb-only"}
    ablation["aggregate"]["failed"] = [{"repetition": 1, "fold": 0, "reason": None}]
    data["groups"].append(ablation)
    report = Report.from_json(data, reported)
    assert report.groups[1].aggregate.failed == [FailedFold(repetition=1, fold=0, reason=None)]
    assert report.failed_folds() == [
        ("bu3dfe-legacy/0/1", "loss became nan"),
        ("ablation-rgb-only/bu3dfe-legacy/1/0", None),
    ]
    assert report.groups[1].folder == "ablation-rgb-only/bu3dfe-legacy"
    assert [g.variant for g in report.full()] == ["full"]
    assert report.to_json() == data


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda g: g.pop("aggregate"), r"groups\[0\] \(full/bu3dfe-legacy\) lacks 'aggregate'"),
        (
            lambda g: g["aggregate"]["accuracy"].update(mean="high"),
            r"groups\[0\] \(full/bu3dfe-legacy\)\.aggregate\.accuracy\.mean must be a number "
            r"or null, found 'high'",
        ),
        (
            lambda g: g["aggregate"]["repetitions"][0]["accuracy"].update(std=[0.1]),
            r"aggregate\.repetitions\[0\]\.accuracy\.std must be a number or null",
        ),
        (lambda g: g["aggregate"].update(folds_ok=True), r"aggregate\.folds_ok must be an integer"),
        (lambda g: g.update(aggregate=[]), r"\.aggregate must be an object, found \[\]"),
        (lambda g: g["aggregate"]["failed"].append({"fold": 1}), r"failed\[0\] lacks 'repetition'"),
        (lambda g: g["aggregate"]["confusion"].update(counts=[[1]]), r"confusion\.counts must be"),
        (lambda g: g["aggregate"]["recall"].clear(), r"aggregate\.recall lacks classes"),
        (lambda g: g.update(title=None), r"\.title must be a string, found None"),
    ],
)
def test_a_malformed_group_is_refused_naming_the_file(reported, tmp_path, change, words):
    data = json.loads(reported.read_text())
    change(data["groups"][0])
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaMismatch, match=words) as error:
        read_report(path)
    assert error.value.path == path and str(error.value).startswith(f"{path}: ")


def test_a_group_with_an_unsafe_variant_is_refused(reported):
    data = json.loads(reported.read_text())
    data["groups"][0]["variant"] = "../x"
    with pytest.raises(Fer3dError, match="variant '../x' is not allowed"):
        Report.from_json(data, reported)


def test_keys_of_a_newer_version_survive_a_round_trip(reported, tmp_path):
    data = json.loads(reported.read_text())
    group = data["groups"][0]
    group["calibration"] = {"ece": 0.04}  # a key this version does not know, at each level
    group["aggregate"]["balanced_accuracy"] = {"mean": 0.5}
    group["aggregate"]["accuracy"]["ci95"] = [0.4, 0.6]
    group["aggregate"]["folds"][0]["gpu_hours"] = 0.1
    group["aggregate"]["repetitions"][0]["accuracy"]["median"] = 0.5
    group["aggregate"]["confusion"]["order"] = "true x predicted"
    data["signature"] = "abc"
    path = write_json(tmp_path / "report.json", data, strict=True)
    report = read_report(path)
    assert report.groups[0].extra == {"calibration": {"ece": 0.04}}
    assert report.groups[0].aggregate.extra == {"balanced_accuracy": {"mean": 0.5}}
    assert report.to_json() == data
    assert json_text(report.to_json(), strict=True) == path.read_text()


def test_a_group_of_a_report_before_0_10_reads_without_the_weights_it_never_had(reported):
    data = json.loads(reported.read_text())
    for key in ("differs_from_paper", "weights"):
        del data["groups"][0][key]
    group = Report.from_json(data, reported).groups[0]
    assert group.differs_from_paper is None and group.weights is None
    assert "differs_from_paper" not in group.to_json() and group.submitted is None
