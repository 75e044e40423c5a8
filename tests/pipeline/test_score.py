"""fer3d-bench score: anyone's predictions scored by the path our own take, and every refusal."""

import csv
import json
import subprocess

import pytest
from click.testing import CliRunner

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import _HOST
from fer3d_bench.pipeline.score import score, stated_conditions
from fer3d_bench.records.conditions import NOT_STATED
from fer3d_bench.records.predictions import PredictionsError
from fer3d_bench.report.conditions import OPTIMISTIC_NOTE


@pytest.fixture(scope="module")
def evaluated(small, tmp_path_factory):
    """An evaluate run of 2 repetitions x 2 folds of bu3dfe-legacy, and its predictions.csv."""
    out = tmp_path_factory.mktemp("score") / "run"
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "1", "--repetitions", "2", "--max-folds", "2", "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def _rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _write(path, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_score_on_evaluates_own_predictions_reproduces_every_number(evaluated, small, tmp_path):
    rows = _rows(evaluated / "predictions.csv")
    assert rows and set(rows[0]) == {
        "protocol",
        "variant",
        "repetition",
        "fold",
        "sample_id",
        "predicted",
    }
    args = [
        "score",
        "--protocol",
        "bu3dfe-legacy",
        "--predictions",
        str(evaluated / "predictions.csv"),
    ]
    args += ["--out", str(tmp_path / "scored"), "--manifests", str(small / "m"), "--model", "ours"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ours = json.loads((evaluated / "report.json").read_text())["groups"][0]
    theirs = json.loads((tmp_path / "scored" / "report.json").read_text())["groups"][0]
    drop = {"result", "checkpoint", "seconds"}  # its files and training time; no score
    for summary in (ours["aggregate"], theirs["aggregate"]):
        for row in summary["folds"]:
            for key in drop:
                row.pop(key, None)
    assert theirs["aggregate"] == ours["aggregate"]
    assert "ours (submitted predictions)" in result.output
    # the small world's manifest is not the one fer3d-bench publishes: the title says so
    data = (
        "not the published manifest: 3 subjects, 36 samples (the published bu3dfe-legacy "
        "1.0.0: 60 subjects, 720 samples)"
    )
    assert f"TRUNCATED: {data}; 2 of 100 repetitions, 2 of 10 folds" in theirs["title"]
    markdown = (tmp_path / "scored" / "report.md").read_text()
    assert "The submitter's own description, as given:\n- model: ours" in markdown


def test_the_submitter_states_conditions_and_the_rest_is_not_stated(evaluated, small, tmp_path):
    args = ["score", "--protocol", "bu3dfe-legacy", "--manifests", str(small / "m")]
    args += ["--predictions", str(evaluated / "predictions.csv"), "--model", "theirs"]
    stated = ["--epoch-selection", "best-test", "--epochs", "20", "--weights", "ImageNet"]
    result = CliRunner().invoke(main, [*args, *stated, "--out", str(tmp_path / "stated")])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "stated" / "run.json").read_text())
    assert info["submission"]["conditions"] == {
        "epoch_selection": "best-test",
        "epochs": 20,
        "weights": "ImageNet",
    }
    group = json.loads((tmp_path / "stated" / "report.json").read_text())["groups"][0]
    conditions = group["conditions"]
    assert (conditions["epoch_selection"], conditions["epochs"]) == ("best-test", 20)
    assert conditions["unit"] == "subject"  # the manifest deals the folds: ours to say
    assert (conditions["subjects"], conditions["samples"]) == (3, 36)
    assert conditions["published_manifest"] is False
    assert (conditions["input_size"], conditions["test_seen"]) == (None, NOT_STATED)
    assert OPTIMISTIC_NOTE in group["title"]  # as stated: the predictions are scored as given
    assert group["aggregate"]["folds_ok"] == 4
    markdown = (tmp_path / "stated" / "report.md").read_text()
    assert "- how the epoch was chosen: best-test\n- epochs: 20\n" in markdown
    assert "- input size (px): not stated\n" in markdown
    assert "- pretrained weights: ImageNet\n" in markdown
    assert "## Timings\n\nnot stated: submitted predictions carry no training time." in markdown
    assert "epoch: the epoch with the best test accuracy" in markdown

    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "unstated")])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "unstated" / "run.json").read_text())
    assert info["submission"]["conditions"] == {}
    group = json.loads((tmp_path / "unstated" / "report.json").read_text())["groups"][0]
    assert group["conditions"]["epoch_selection"] == NOT_STATED
    assert group["conditions"]["weights"] == NOT_STATED and group["conditions"]["epochs"] is None
    assert OPTIMISTIC_NOTE not in group["title"]
    markdown = (tmp_path / "unstated" / "report.md").read_text()
    assert "- dataset: not stated (no dataset is read" in markdown
    assert "- pretrained weights: not stated" in markdown
    assert "the model's configuration and seed: not stated" in markdown
    for ours in ("`None`", "seed None", "config `{}`", "trained from scratch", "| total | 0.0 |"):
        assert ours not in markdown  # nothing of ours said of someone else's model


@pytest.mark.parametrize(
    "option",
    [
        ["--epoch-selection", "best"],
        ["--epochs", "0"],
        ["--input-size", "-3"],
    ],
)
def test_a_stated_condition_is_checked(evaluated, small, tmp_path, option):
    args = ["score", "--protocol", "bu3dfe-legacy", "--manifests", str(small / "m")]
    args += ["--predictions", str(evaluated / "predictions.csv"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, *option])
    assert result.exit_code == 2 and option[0] in result.output
    assert not (tmp_path / "o").exists()


def test_stated_conditions_refuses_what_it_does_not_know():
    assert stated_conditions({"epochs": 20, "weights": None}) == {"epochs": 20}
    with pytest.raises(Fer3dError, match=r"unknown submission conditions \['unit'\]"):
        stated_conditions({"unit": "sample"})
    with pytest.raises(Fer3dError, match="the stated epochs must be a positive integer"):
        stated_conditions({"epochs": True})
    with pytest.raises(Fer3dError, match="the stated weights must be a non-empty text"):
        stated_conditions({"weights": "  "})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("drop", "lacks 1 of its"),
        ("duplicate", "is predicted twice in repetition 0, fold 0 (also row 2)"),
        ("unknown id", "'bu3dfe:F9999_AN01WH_F3D' is not a sample of the manifest"),
        ("training sample", "is a training sample of repetition 0, fold 0"),
        ("class", "'joy' is not a class of bu3dfe-legacy"),
    ],
)
def test_each_refusal_names_the_row(evaluated, small, tmp_path, change, named):
    rows = [r for r in _rows(evaluated / "predictions.csv") if r["variant"] == "full"]
    first = rows[0]  # line 2 of the file: repetition 0, fold 0
    assert (first["repetition"], first["fold"]) == ("0", "0")
    if change == "drop":
        rows = rows[1:]
    elif change == "duplicate":
        rows = [first, dict(first), *rows[1:]]
    elif change == "unknown id":
        first["sample_id"] = "bu3dfe:F9999_AN01WH_F3D"
    elif change == "training sample":
        manifest = sp.read_manifest(small / "m" / "bu3dfe-legacy" / "1.0.0.json")
        tested = {r["sample_id"] for r in rows if (r["repetition"], r["fold"]) == ("0", "0")}
        first["sample_id"] = next(s for s in sorted(manifest.content["samples"]) if s not in tested)
    else:
        first["predicted"] = "joy"
    path = _write(tmp_path / "p.csv", rows)
    with pytest.raises(PredictionsError) as refused:
        score("bu3dfe-legacy", path, tmp_path / "out", manifests=small / "m")
    message = str(refused.value)
    assert named in message
    assert str(path) in message
    if change != "drop":
        assert ": row 2: " in message or ": row 3: " in message  # the row, as a person counts
    else:
        assert "repetition 0, fold 0" in message
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_json_predictions_with_scores_and_the_cli_refusal_is_one_line(evaluated, small, tmp_path):
    rows = [r for r in _rows(evaluated / "predictions.csv") if r["variant"] == "full"]
    entries = [
        {
            **{k: r[k] for k in ("repetition", "fold", "sample_id", "predicted")},
            "scores": {r["predicted"]: 0.9},
        }
        for r in rows
    ]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"predictions": entries}))
    paths = score("bu3dfe-legacy", path, tmp_path / "ok", manifests=small / "m")
    assert paths.report.groups[0].aggregate.folds_ok == 4
    entries[3]["predicted"] = "joy"
    path.write_text(json.dumps(entries))
    args = ["score", "--protocol", "bu3dfe-legacy", "--predictions", str(path)]
    result = CliRunner().invoke(
        main, [*args, "--out", str(tmp_path / "no"), "--manifests", str(small / "m")]
    )
    assert result.exit_code == 1
    classes = paths.report.groups[0].aggregate.classes
    expected = f"error: {path}: row 4: 'joy' is not a class of bu3dfe-legacy {sorted(classes)}"
    assert result.output.strip().splitlines() == [expected]


def test_a_folder_that_already_holds_files_is_refused(evaluated, small, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "result.json").write_text("{}")
    with pytest.raises(Fer3dError, match="is not an empty folder"):
        score("bu3dfe-legacy", evaluated / "predictions.csv", tmp_path / "out", small / "m")


def test_a_failure_while_writing_leaves_no_folder(evaluated, small, tmp_path, monkeypatch):
    def broken(run_dir):
        raise OSError("disk full")

    monkeypatch.setattr("fer3d_bench.pipeline.score.write_report", broken)
    with pytest.raises(OSError, match="disk full"):
        score("bu3dfe-legacy", evaluated / "predictions.csv", tmp_path / "out", small / "m")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary


def test_the_folder_a_killed_scoring_left_is_removed_by_the_next(evaluated, small, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".out.tmp-{_HOST}-{dead.pid}"
    (stale / "bu3dfe-legacy").mkdir(parents=True)
    (stale / "run.json").write_text("{}")
    score("bu3dfe-legacy", evaluated / "predictions.csv", tmp_path / "out", small / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
