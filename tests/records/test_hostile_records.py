"""Records from other people, planted broken or hostile: a FIFO, nesting no parser follows, a
list where an object belongs, a string repetition, a negative fold, a truncated file. Each is
one line naming the file and the field, never a hang or a traceback; and a diverged fold's NaN
is written as strict JSON, so its report is written."""

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.records.io import (
    MAX_DEPTH,
    Fields,
    RecordDamaged,
    SchemaMismatch,
    json_line,
    json_text,
    read_json,
    read_jsonl,
    read_toml,
)
from fer3d_bench.records.result import read_result

FIXTURE = Path(__file__).parents[1] / "data" / "run-0.7.0"  # as 0.7.0 wrote it (make.py)
RESULT = "bu3dfe-legacy/0/1/result.json"
REPORT_FILES = ("report.json", "report.md", "predictions.csv", "figures")


@pytest.fixture
def run(tmp_path):
    """A copy of the 0.7.0 run folder, without its report, alone in a box folder."""
    folder = shutil.copytree(
        FIXTURE, tmp_path / "box" / "run", ignore=shutil.ignore_patterns("*.py", "report.*")
    )
    return folder


@contextlib.contextmanager
def deadline(seconds: int = 20):
    """Fail instead of hanging: a reader that opens a FIFO blocks until a writer comes."""

    def expired(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(args: list[str], *named: str) -> str:
    """The one `error:` line of a command that must exit 1 without a traceback."""
    with deadline():
        result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), result.output  # not a traceback
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for words in named:
        assert words in errors[0], errors[0]
    return errors[0]


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _job(**values):
    return lambda data: data["job"].update(values)


# each: (file, how it is planted, what the one line must say of it)
PLANTED = {
    "run.json a FIFO": ("run.json", _fifo, "is not a regular file"),
    "result.json a FIFO": (RESULT, _fifo, "is not a regular file"),
    "nested JSON": (
        RESULT,
        lambda p: p.write_text("[" * 100_000),
        f"nested deeper than {MAX_DEPTH} levels",
    ),
    "truncated": (
        RESULT,
        lambda p: p.write_bytes(p.read_bytes()[:300]),
        "unreadable or truncated JSON",
    ),
    "a list for the predictions": (
        RESULT,
        lambda p: _edit(p, lambda d: d.update(predictions=["bu3dfe:F0002_AN03"])),
        "predictions must be an object or null, found ['bu3dfe:F0002_AN03']",
    ),
    "a prediction not an object": (
        RESULT,
        lambda p: _edit(p, lambda d: d["predictions"].update({"bu3dfe:F0002_AN03": "anger"})),
        "predictions.bu3dfe:F0002_AN03 must be an object, found 'anger'",
    ),
    "a string repetition": (
        RESULT,
        lambda p: _edit(p, _job(repetition="0")),
        "job.repetition must be an integer >= 0, found '0'",
    ),
    "a negative fold": (RESULT, lambda p: _edit(p, _job(fold=-1)), "job.fold must be an integer"),
    "a job block that is a list": (
        RESULT,
        lambda p: _edit(p, lambda d: d.update(job=[1, 2])),
        "job must be an object, found [1, 2]",
    ),
    "a history of words": (
        RESULT,
        lambda p: _edit(p, lambda d: d.update(history=["epoch 1"])),
        "history must be a list of epochs",
    ),
    "an unknown status": (
        RESULT,
        lambda p: _edit(p, lambda d: d.update(status="done")),
        "status must be one of 'ok', 'failed', found 'done'",
    ),
    "a run.json that is a list": (
        "run.json",
        lambda p: p.write_text("[]"),
        "expected a JSON object, found list",
    ),
    "protocol counts in words": (
        "run.json",
        lambda p: _edit(p, lambda d: d["protocols"]["bu3dfe-legacy"].update(folds_total="ten")),
        "protocols.bu3dfe-legacy.folds_total must be an integer >= 1, found 'ten'",
    ),
    "variants a list": (
        "run.json",
        lambda p: _edit(p, lambda d: d.update(variants=["full"])),
        "variants must be an object of configurations",
    ),
    "an experiment without its table": (
        "run.json",
        lambda p: _edit(p, lambda d: d.update(experiment={"name": "table-iv"})),
        "experiment lacks 'table'",
    ),
    "an environment of words": (
        "run.json",
        lambda p: _edit(p, lambda d: d.update(environment="linux")),
        "environment must be an object, found 'linux'",
    ),
}


@pytest.mark.parametrize("name", PLANTED)
def test_report_refuses_a_planted_record_in_one_line_naming_it(run, name):
    file, plant, problem = PLANTED[name]
    plant(run / file)
    before = sorted(p.name for p in run.parent.iterdir())
    line = refused(["report", str(run)], f"{run / file}: ", problem)
    assert "\n" not in line
    assert not [f for f in REPORT_FILES if (run / f).exists()]  # nothing partial
    assert sorted(p.name for p in run.parent.iterdir()) == before  # nothing outside


def test_a_diverged_fold_with_nan_values_is_reported_in_strict_json(run):
    """As a run of lr = nan left it (JSON before 0.14 held the bare NaN token): the report is
    written, strict JSON, the NaN as null, and the fold's failure and its reason named."""
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text.replace('"lr_backbone": 0.003', '"lr_backbone": NaN'))
    result = json.loads((run / RESULT).read_text())
    result.update(status="failed", reason="training diverged: loss became nan in epoch 1")
    result.update(predictions={}, metrics=None, seconds=float("inf"))
    result["history"][0]["loss_total"] = float("nan")
    (run / RESULT).write_text(json.dumps(result, indent=1))
    assert "NaN" in (run / RESULT).read_text() and "Infinity" in (run / RESULT).read_text()

    outcome = CliRunner().invoke(main, ["report", str(run)])
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.output
    assert "1 fold failed" in outcome.output, outcome.output
    report = json.loads((run / "report.json").read_text(), parse_constant=_not_json)
    assert report["run"]["variants"]["full"]["lr_backbone"] is None
    (group,) = report["groups"]
    assert group["aggregate"]["failed"] == [
        {"repetition": 0, "fold": 1, "reason": "training diverged: loss became nan in epoch 1"}
    ]
    markdown = (run / "report.md").read_text()
    assert "| full | bu3dfe-legacy | 0 | 1 | training diverged: loss became nan" in markdown
    assert read_result(run / RESULT).history[0]["loss_total"] != 0  # NaN read back as NaN


def _not_json(token: str):
    raise AssertionError(f"{token} is not JSON")


def test_non_finite_numbers_are_null_and_normal_records_keep_their_bytes():
    for path in [FIXTURE / "run.json", *FIXTURE.rglob("result.json")]:
        text = path.read_text()
        assert json_text(json.loads(text)) == text  # written by 0.7.0: the same bytes today
    report = (FIXTURE / "report.json").read_text()
    assert json_text(json.loads(report), strict=True) == report
    data = {"b": [1.5, float("nan")], "a": {"x": float("inf"), "y": -float("inf")}, "é": 1}
    text = json_text(data)
    assert json.loads(text, parse_constant=_not_json) == {
        "a": {"x": None, "y": None},
        "b": [1.5, None],
        "é": 1,
    }
    assert "\\u00e9" in text and "é" in json_text(data, strict=True)  # escaping kept as it was
    line = {"epoch": 2, "loss_total": float("nan")}
    assert json_line(line) == '{"epoch": 2, "loss_total": null}\n'
    normal = {"seconds": 0.5, "epoch": 1}
    assert json_line(normal) == json.dumps(normal, sort_keys=True) + "\n"  # as it always was


def test_history_reads_null_and_the_older_nan_token_as_nan(tmp_path):
    result = json.loads((FIXTURE / RESULT).read_text())
    for value, name in ((float("nan"), "old.json"), (None, "new.json")):
        result["history"][0]["loss_total"] = value  # NaN: json writes the bare token, as before
        (tmp_path / name).write_text(json.dumps(result))
        read = read_result(tmp_path / name).history[0]["loss_total"]
        assert read != read  # NaN


def test_the_reader_bounds_what_it_reads(tmp_path):
    path = tmp_path / "record.json"
    path.write_text('{"a": 1}')
    with pytest.raises(RecordDamaged, match=r"record is 8 bytes; refusing more than 4 bytes"):
        read_json(path, max_bytes=4)
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    path.write_text(f'{{"a": {deep}}}')  # parses, but deeper than any record: refused
    with pytest.raises(RecordDamaged, match="nested deeper"):
        read_json(path)
    path.write_text('{"a": ' + "9" * 5000 + "}")  # more digits than Python converts
    with pytest.raises(RecordDamaged, match="unreadable or truncated JSON"):
        read_json(path)
    toml = tmp_path / "config.toml"
    toml.write_text("a = " + "[" * 100_000)
    with pytest.raises(RecordDamaged, match="config.toml: not valid TOML .*nested deeper"):
        read_toml(toml)
    os.mkfifo(tmp_path / "fifo.toml")
    with deadline(), pytest.raises(RecordDamaged, match="fifo.toml: file is not a regular file"):
        read_toml(tmp_path / "fifo.toml")
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(RecordDamaged, match=r"metrics.jsonl: line 2 is not a JSON object"):
        read_jsonl(log)
    log.write_text('{"epoch": 1}\n' + "[" * 100_000 + "\n")
    with pytest.raises(RecordDamaged, match=r"metrics.jsonl: line 2 is not valid JSON"):
        read_jsonl(log)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(RecordDamaged, match="folder.json: record is a folder"):
        read_json(tmp_path / "folder.json")


def test_fields_name_the_file_the_field_and_what_was_expected():
    path = Path("x.json")
    read = Fields(path, {"n": -1, "s": 3, "o": [], "t": None, "l": [1, "a"]}, "job")
    with pytest.raises(SchemaMismatch, match=r"^x.json: job.n must be an integer >= 0, found -1$"):
        read.integer("n", min=0)
    with pytest.raises(SchemaMismatch, match=r"job.s must be a string, found 3"):
        read.string("s")
    with pytest.raises(SchemaMismatch, match=r"job.o must be an object, found \[\]"):
        read.object("o")
    with pytest.raises(SchemaMismatch, match=r"job.l must be a list of numbers, found \[1, 'a'\]"):
        read.array("l", lambda v: isinstance(v, int), "numbers")
    with pytest.raises(SchemaMismatch, match=r"x.json: job lacks 'absent'"):
        read.number("absent")
    assert read.string("t", null=True) is None
    assert read.integer("absent", optional=True, default=7) == 7
    with pytest.raises(SchemaMismatch, match=r"x.json: the record must be an object, found 'a'"):
        Fields(path, "a")
