"""`score` on predictions files as people save them: Excel's "CSV UTF-8" (a byte-order mark,
CRLF) scores; a column named twice, a FIFO, JSON nested past any parser, a fold of 1.5 or an
infinite score is refused in one line naming the file, and nothing is written."""

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench import splits as sp
from fer3d_bench.cli import main

PROTOCOL = "bu3dfe-legacy"
HEADER = ["repetition", "fold", "sample_id", "predicted"]


@pytest.fixture(scope="module")
def truth(small) -> list[list[str]]:
    """Every test sample of repetition 0, fold 0, predicted as its true class: CSV rows."""
    manifest = sp.read_manifest(small / "m" / PROTOCOL / "1.0.0.json")
    samples = manifest.samples()
    return [["0", "0", s, samples[s].label] for s in sorted(manifest.test_samples(0, 0))]


@contextlib.contextmanager
def deadline(seconds: int = 20):
    def expired(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _score(small: Path, predictions: Path, out: Path):
    args = ["score", "--protocol", PROTOCOL, "--predictions", str(predictions)]
    with deadline():
        return CliRunner().invoke(main, [*args, "--out", str(out), "--manifests", str(small / "m")])


def _csv(rows: list[list[str]], header=HEADER) -> str:
    return "\r\n".join(",".join(row) for row in [header, *rows]) + "\r\n"


def test_a_csv_saved_by_excel_as_csv_utf8_is_scored(small, truth, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv(truth).encode("utf-8"))  # BOM, CRLF: as Excel
    result = _score(small, path, tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["groups"][0]["aggregate"]["accuracy"]["mean"] == 1.0


def _twice(path: Path, truth) -> None:
    header = [*HEADER, "predicted"]  # a second prediction column, which a dict would hide
    path.write_text(_csv([[*row, "anger"] for row in truth], header))


def _fifo(path: Path, truth) -> None:
    os.mkfifo(path)


def _nested(path: Path, truth) -> None:
    path.with_suffix(".json").write_text("[" * 100_000)


def _entries(truth, **change) -> list[dict]:
    entries = [dict(zip(HEADER, row, strict=True)) for row in truth]
    entries[0].update(change)
    return entries


def _half_fold(path: Path, truth) -> None:
    path.with_suffix(".json").write_text(json.dumps(_entries(truth, fold=1.5)))


def _infinite_score(path: Path, truth) -> None:  # 1e999 is what JSON has for infinity
    text = json.dumps(_entries(truth, scores={"anger": 0.5}))
    path.with_suffix(".json").write_text(text.replace("0.5", "1e999", 1))


REFUSED = {
    "a column named twice": (_twice, "csv", "the header names column 'predicted' twice"),
    "a FIFO": (_fifo, "csv", "predictions file is not a regular file"),
    "nested JSON": (_nested, "json", "JSON nested too deeply"),
    "a fold of 1.5": (_half_fold, "json", "row 1: repetition and fold must be whole numbers"),
    "an infinite score": (_infinite_score, "json", "row 1: every score must be a finite number"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_a_predictions_file_that_cannot_be_scored_is_one_line(small, truth, tmp_path, name):
    plant, suffix, problem = REFUSED[name]
    path = tmp_path / f"p.{suffix}"
    plant(tmp_path / "p.csv", truth)
    result = _score(small, path, tmp_path / "out")
    assert isinstance(result.exception, SystemExit), result.output  # not a traceback
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.output
    assert problem in lines[0]
    assert not (tmp_path / "out").exists()  # refused before anything is written
