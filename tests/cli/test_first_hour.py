"""The first hour (issue 28): what a newcomer meets before any result, each message tested.

A light `--help`; a scoring refusal that names the manifest; a missing fold listed; an empty
dataset folder pointed at `scan`; the cost of the paper preset on a CPU; 0-based indices said
so; Ctrl-C saying what was kept; a run's header naming its protocols.
"""

import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from fer3d_bench import splits as sp
from fer3d_bench.cli import COMMANDS, SUMMARIES, main
from fer3d_bench.cli.cost import noted, paper_on_cpu
from fer3d_bench.errors import Fer3dError
from fer3d_bench.evaluation.plan import Plan
from fer3d_bench.explain.run import fold_folder
from fer3d_bench.pipeline.evaluate import plan_lines
from fer3d_bench.pipeline.score import score
from fer3d_bench.records.predictions import PredictionsError
from fer3d_bench.splits.manifest import ordinal

HEAVY = ("torch", "timm", "matplotlib", "pandas")


def test_the_top_level_help_imports_nothing_heavy_and_lists_every_command():
    code = (
        "import sys\n"
        "from fer3d_bench.cli import main\n"
        "main(['--help'], standalone_mode=False)\n"
        f"print('heavy:', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy: []", out.stdout
    section = out.stdout.split("Commands:")[1].split("heavy:")[0]
    listed = [line.split()[0] for line in section.splitlines() if line[2:3].isalpha()]
    assert listed == list(COMMANDS)
    assert set(SUMMARIES) == set(COMMANDS)
    assert all(len(line) < 60 for line in SUMMARIES.values())  # one line each at 80 columns


def _predictions_of(manifest_path: Path, out: Path) -> Path:
    """Perfect predictions of every fold of repetition 0 of a manifest (no model needed)."""
    manifest = sp.read_manifest(manifest_path)
    samples = manifest.samples()
    with open(out, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["repetition", "fold", "sample_id", "predicted"])
        for fold in range(len(manifest.counts(0))):
            for sample_id in sorted(manifest.test_samples(0, fold)):
                writer.writerow([0, fold, sample_id, samples[sample_id].label])
    return out


def test_scoring_the_demos_predictions_against_the_published_manifest_names_it(small, tmp_path):
    path = _predictions_of(small / "m" / "bu3dfe-full" / "1.0.0.json", tmp_path / "p.csv")
    args = ["score", "--protocol", "bu3dfe-full", "--predictions", path, "--out", tmp_path / "o"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    said = result.output
    assert f"{path}: row " in said or "repetition 0, fold" in said  # the row detail stays
    assert "Checked against the published manifest" in said and "likely cause" in said
    assert "--manifests DIR" in said and "manifests=DIR" not in said
    with pytest.raises(PredictionsError) as refused:
        score("bu3dfe-full", path, tmp_path / "o2")
    assert "pass manifests=DIR" in str(refused.value) and "--manifests" not in str(refused.value)
    scored = score("bu3dfe-full", path, tmp_path / "o3", manifests=small / "m")  # the right one
    assert scored.markdown.is_file()


def test_a_fold_the_run_lacks_is_refused_with_the_form_and_the_folds_it_has(tmp_path):
    run = tmp_path / "run"
    for rep, fold in [(0, k) for k in range(5)]:
        (run / "bu3dfe-full" / str(rep) / str(fold)).mkdir(parents=True)
        (run / "bu3dfe-full" / str(rep) / str(fold) / "result.json").write_text("{}")
    for rep in range(2):
        for fold in range(3):
            folder = run / "bu3dfe-legacy" / str(rep) / str(fold)
            folder.mkdir(parents=True)
            (folder / "result.json").write_text("{}")
    assert fold_folder(run, "full", "bu3dfe-legacy/1/2") == run / "bu3dfe-legacy" / "1" / "2"
    for wrong in ("bu3dfe-full/5", "bu3dfe-full/0/7", "nothing"):
        with pytest.raises(Fer3dError) as refused:
            fold_folder(run, "full", wrong)
        said = refused.value.for_cli()
        assert said.startswith(f"--fold {wrong} is not a finished fold of {run}")
        assert "expected PROTOCOL/REPETITION/FOLD, e.g. bu3dfe-full/0/0" in said
        shown = "bu3dfe-full/0/0, bu3dfe-full/0/1, bu3dfe-full/0/2, bu3dfe-full/0/3, "
        assert shown + "bu3dfe-full/0/4 and 6 more" in said
        assert str(refused.value).startswith(f"fold={wrong!r} ")


def test_an_empty_dataset_folder_points_at_scan_and_leaves_no_render_folder(tmp_path):
    empty = tmp_path / "bu3dfe"
    empty.mkdir()
    out = tmp_path / "merged.h5"
    result = CliRunner().invoke(main, ["build-dataset", "--bu3dfe", str(empty), "--out", str(out)])
    assert result.exit_code == 1
    assert "no recognisable samples" in result.output
    assert f"fer3d-bench scan {empty} --dataset bu3dfe" in result.output
    assert not (tmp_path / "merged.h5.render").exists() and not out.exists()


def test_the_paper_preset_on_the_cpu_says_what_a_fold_costs(small, tmp_path, monkeypatch):
    line = paper_on_cpu(2500)
    assert line.startswith("note: preset paper on the CPU: a fold of 20 epochs over ~2000")
    assert "days here (basis: 4.7 s per training sample and epoch" in line
    assert "--preset cpu-small" in line and "about 214x less" in line
    assert "a fold of 1 epoch over ~8 training samples" in paper_on_cpu(10, epochs=1)
    assert "takes about 1 minute here" in paper_on_cpu(10, epochs=1)

    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr("fer3d_bench.cli.evaluation.train_fold", interrupted)
    manifest = small / "m" / "bu3dfe-full" / "1.0.0.json"
    args = ["train", "--dataset", small / "merged.h5", "--manifest", manifest]
    args += ["--out", tmp_path / "f0", "--device", "cpu"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    lines = result.output.splitlines()
    assert lines[0].startswith("note: preset paper on the CPU: a fold of 20 epochs over ~60")
    tiny = CliRunner().invoke(main, [str(a) for a in [*args, "--preset", "tiny"]])
    assert "note: preset paper" not in tiny.output


@pytest.mark.parametrize(
    ("command", "target", "kept"),
    [
        ("train", "fer3d_bench.cli.evaluation.train_fold", "the epochs finished are kept"),
        ("evaluate", "fer3d_bench.cli.evaluation.run_evaluation", "the finished folds are kept"),
        ("render-depth", "fer3d_bench.cli.data.render_dataset", "the samples rendered so far"),
        ("build-dataset", "fer3d_bench.cli.data.build", "the samples rendered so far"),
    ],
)
def test_ctrl_c_says_what_was_kept_and_how_to_resume(
    small, tmp_path, monkeypatch, command, target, kept
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    args = [command, "--dataset", small / "merged.h5", "--out", tmp_path / "o", "--preset", "tiny"]
    if command == "train":
        args += ["--manifest", small / "m" / "bu3dfe-full" / "1.0.0.json"]
    elif command == "evaluate":
        args += ["--protocol", "bu3dfe-full", "--manifests", small / "m"]
    elif command == "render-depth":
        args = [command, tmp_path / "bu3dfe", "--dataset", "bu3dfe", "--out", tmp_path / "o"]
    else:
        args = [command, "--bu3dfe", tmp_path / "bu3dfe", "--out", tmp_path / "o.h5"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 130, result.output
    assert f"interrupted: {kept}" in result.output
    assert "run the same command again to resume" in result.output
    assert "Aborted!" not in result.output
    assert not (tmp_path / "o.h5.render").exists()  # build-dataset: nothing made, nothing left


def test_splits_show_says_its_indices_are_numbered_from_0():
    manifest = sp.MANIFESTS_DIR / "bu3dfe-legacy" / "1.0.0.json"
    result = CliRunner().invoke(main, ["splits", "show", str(manifest), "--repetition", "1"])
    assert result.exit_code == 0, result.output
    title = result.output.splitlines()[0]
    assert title == "bu3dfe-legacy 1.0.0 (kfold), repetition 1 (the 2nd of 100, numbered from 0)"
    wrong = CliRunner().invoke(main, ["splits", "show", str(manifest), "--repetition", "100"])
    assert wrong.exit_code == 2 and "repetitions 0 to 99 (numbered from 0" in wrong.output
    assert ordinal(1) == "1st" and ordinal(12) == "12th" and ordinal(23) == "23rd"


def _plan(jobs) -> Plan:
    identities = [
        SimpleNamespace(identity=SimpleNamespace(protocol=p, repetition=r, fold=f, variant="full"))
        for p, r, f in jobs
    ]
    return Plan(Path("demo/runs/demo"), None, identities)


def test_a_run_names_its_protocols_before_its_fold_jobs_and_says_when_it_resumes():
    legacy = _plan([("bu3dfe-legacy", r, f) for r in range(2) for f in range(3)])
    lines = plan_lines(legacy, pending=6)
    assert lines[0] == (
        "bu3dfe-legacy: 2 repetition(s) x 3 fold(s), variant(s) full; folders "
        "bu3dfe-legacy/REPETITION/FOLD, numbered from 0"
    )
    assert lines[1] == "demo/runs/demo: 6 fold jobs, 0 already done"
    resumed = plan_lines(legacy, pending=2)
    assert resumed[1].startswith("demo/runs/demo: resuming: 4 of 6 fold jobs already done")


def test_the_cost_note_of_evaluate_comes_after_its_checks_never_before_a_refusal(small, tmp_path):
    args = ["evaluate", "--dataset", small / "merged.h5", "--out", tmp_path / "o"]
    args += ["--protocol", "bu3dfe-full", "--device", "cpu"]  # the published manifest: refused
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and "note: preset paper" not in result.output
    said = []
    echo = noted(said.append, "note: n")
    echo("bu3dfe-full: 1 repetition(s)")
    echo("second")
    assert said == ["note: n", "bu3dfe-full: 1 repetition(s)", "second"]
