"""Records: the one JSON/TOML reader's typed errors, schema checks, and the round trips."""

import json
import shutil
from pathlib import Path

import pytest

from fer3d_bench.records.io import (
    RecordDamaged,
    RecordNotFound,
    SchemaMismatch,
    read_json,
    read_jsonl,
    read_toml,
    write_json,
)
from fer3d_bench.records.report import read_report
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
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": float("nan")}, strict=True)
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


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
    with pytest.raises(SchemaMismatch, match=r"run.json: protocol 'p' lacks"):
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
    title = again.groups[0]["title"]  # no weights; the differences as 0.7.0 recorded them
    assert "not pretrained" in title and "epochs 1 vs 30" in title
