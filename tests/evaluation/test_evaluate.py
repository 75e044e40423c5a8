"""evaluate: fold jobs, resuming without retraining, refusals, failed folds, submitit."""

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from runs import CPU, diverging, pretrained, small_spec

from fer3d_bench import splits as sp
from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import ConfigError, ManifestMismatch
from fer3d_bench.evaluation.local import run_local
from fer3d_bench.evaluation.plan import EvalSpec
from fer3d_bench.evaluation.plan import plan as make_plan
from fer3d_bench.evaluation.pool import run_pool
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.report import write_report
from fer3d_bench.train import loop
from fer3d_bench.train.config import load_config_file

FAST = {"epochs": 1}


def _spec(base, out, **changes):
    """Two repetitions of two folds of bu3dfe-legacy."""
    return small_spec(base, out, **({"repetitions": 2} | changes))


REAL_TRAIN = loop.train


def _counting_train(monkeypatch, fail_on=None, stop_at=None):
    """Wrap the real trainer: count calls; make one fold really diverge; or interrupt."""
    real = REAL_TRAIN
    calls = []

    def wrapped(fold, out, config, *args, **kwargs):
        calls.append(str(out))
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        if fail_on is not None and str(out).endswith(fail_on):
            with diverging():  # the trainer's own divergence check fires
                return real(fold, out, config, *args, **kwargs)
        return real(fold, out, config, *args, **kwargs)

    monkeypatch.setattr(loop, "train", wrapped)
    return calls


def test_each_fold_writes_its_result_with_predictions_for_its_test_subjects(small, tmp_path):
    plan = make_plan(_spec(small, tmp_path / "run"))
    assert [j.folder for j in plan.jobs] == [
        "bu3dfe-legacy/0/0",
        "bu3dfe-legacy/0/1",
        "bu3dfe-legacy/1/0",
        "bu3dfe-legacy/1/1",
    ]
    summaries = run_local(plan.jobs, progress=False)
    assert [s.status for s in summaries] == ["ok"] * 4
    manifest = sp.read_manifest(small / "m" / "bu3dfe-legacy" / "1.0.0.json")
    with H5Dataset(small / "merged.h5") as data:
        for job in plan.jobs:
            result = json.loads(job.result_path.read_text())
            rep, fold = job.identity.repetition, job.identity.fold
            _, test_idx = manifest.fold_indices(data, rep, fold)
            assert sorted(result["predictions"]) == sorted(data.sample_ids[i] for i in test_idx)
            for sample_id, p in result["predictions"].items():
                assert p["true"] == data.classes[int(data.labels[data.index_of(sample_id)])]
                assert p["pred"] in result["classes"]  # six classes: never "neutral"
            hits = sum(p["true"] == p["pred"] for p in result["predictions"].values())
            assert result["metrics"]["accuracy"] == pytest.approx(hits / len(test_idx))
            assert result["job"]["manifest_sha256"] == manifest.sha256
            assert (tmp_path / "run" / result["checkpoint"]).is_file()
            assert len(result["history"]) == 1
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["protocols"]["bu3dfe-legacy"]["repetitions_run"] == 2
    assert info["weights"] == result["weights"] == {"pretrained": False}  # named in the title
    assert info["protocols"]["bu3dfe-legacy"]["train_defaults"] == {}


def test_an_interrupted_evaluation_resumes_without_retraining_finished_folds(
    small, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    calls = _counting_train(monkeypatch, stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_local(make_plan(_spec(small, out)).jobs, progress=False)
    finished = sorted(p.relative_to(out).as_posix() for p in out.rglob("result.json"))
    assert finished == ["bu3dfe-legacy/0/0/result.json", "bu3dfe-legacy/0/1/result.json"]
    stamps = {p: (out / p).read_bytes() for p in finished}
    calls = _counting_train(monkeypatch)
    summaries = run_local(make_plan(_spec(small, out)).jobs, progress=False)
    assert [s.skipped for s in summaries] == [True, True, False, False]
    assert [c.split("run/")[1] for c in calls] == ["bu3dfe-legacy/1/0", "bu3dfe-legacy/1/1"]
    assert all((out / p).read_bytes() == b for p, b in stamps.items())  # untouched
    calls.clear()
    run_local(make_plan(_spec(small, out)).jobs, progress=False)
    assert calls == []  # everything done: nothing trains


def test_a_diverging_fold_is_marked_failed_and_the_others_go_on(small, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _counting_train(monkeypatch, fail_on="bu3dfe-legacy/0/1")
    summaries = run_local(make_plan(_spec(small, out, repetitions=1)).jobs, progress=False)
    assert [s.status for s in summaries] == ["ok", "failed"]
    failed = json.loads((out / "bu3dfe-legacy/0/1/result.json").read_text())
    assert failed["status"] == "failed" and "diverged" in failed["reason"]
    assert "inf" in failed["reason"] or "nan" in failed["reason"]
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 fold failed" in result.output
    markdown = (out / "report.md").read_text()
    assert "| full | bu3dfe-legacy | 0 | 1 | training diverged" in markdown


def test_a_run_folder_of_another_configuration_is_refused_before_training(
    small, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    run_local(make_plan(_spec(small, out, repetitions=1, max_folds=1)).jobs, progress=False)
    calls = _counting_train(monkeypatch)
    with pytest.raises(ConfigError, match=r"different configuration.*epochs 1 -> 2"):
        make_plan(_spec(small, out, overrides={"epochs": 2}))
    assert calls == []
    # so is one trained from other pretrained weights (their sha256 is part of each job)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not the weights the folds were trained from")
    with pytest.raises(ConfigError, match="other pretrained weights"):
        make_plan(_spec(small, out, repetitions=1, max_folds=1, environment=pretrained(weights)))
    # a result file that belongs to another job is refused too
    (out / "run.json").unlink()
    with pytest.raises(ConfigError, match="different job"):
        make_plan(_spec(small, out, overrides={"epochs": 2}))


def test_a_manifest_that_does_not_match_the_dataset_stops_with_verify_message(small, tmp_path):
    # the published manifest names 60 real BU-3DFE subjects; this dataset has 3
    with pytest.raises(
        ManifestMismatch, match=r"(?s)does not match.*splits verify.*missing: bu3dfe:"
    ):
        make_plan(_spec(small, tmp_path / "run", manifests=sp.MANIFESTS_DIR))
    assert not (tmp_path / "run").exists()


def test_config_file_keys_are_checked_by_name(small, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('preset = "tiny"\nepochs = 1\n[model]\nhead = "pool"\n')
    loaded = load_config_file(good)
    assert (loaded.preset, loaded.overrides) == ("tiny", {"epochs": 1, "model.head": "pool"})
    assert loaded.source["file"] == good.name and len(loaded.source["sha256"]) == 64
    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "tiny"\nepochs = 1\n[model]\nbackbon = "x"\n')
    result = CliRunner().invoke(
        main,
        ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
        + ["--out", str(tmp_path / "run"), "--manifests", str(small / "m")]
        + ["--config", str(bad)],
    )
    assert result.exit_code == 1
    assert "bad.toml" in result.output and "model.backbon" in result.output


def test_cli_evaluate_with_ablation_writes_the_report_and_figures(small, tmp_path):
    out = tmp_path / "run"
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-full"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "1", "--max-folds", "2", "--ablation", "rgb-only", "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "TRUNCATED" in result.output and "2 of 5 folds" in result.output
    assert "87.6" in result.output and "not reproduced" in result.output
    assert "### Ablations" in result.output and "points" in result.output
    # not a terminal: progress comes as whole lines, never redrawn bars or cursor escapes
    assert "\r" not in result.output and "\x1b" not in result.output
    assert "folds: 100% 4/4" in result.output
    assert (out / "ablation-rgb-only/bu3dfe-full/0/1/result.json").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["dataset"]["fingerprint"]
    assert report["run"]["protocols"]["bu3dfe-full"]["manifest_sha256"]
    assert {g["variant"] for g in report["groups"]} == {"full", "rgb-only"}
    for figure in report["figures"]:
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = CliRunner().invoke(main, args)  # everything done: nothing retrains
    assert again.exit_code == 0 and "resuming: 4 of 4 fold jobs already done" in again.output


def test_submitit_path_with_its_local_executor(small, tmp_path):
    out = tmp_path / "run"
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "1", "--repetitions", "1", "--max-folds", "2", "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--launcher", "submitit-local"])
    assert result.exit_code == 0, result.output
    assert "2 fold jobs, 0 already done" in result.output
    title = next(t for t in result.output.splitlines() if t.startswith("### bu3dfe-legacy"))
    assert title.startswith("### bu3dfe-legacy 1.0.0 — TRUNCATED: not the published manifest")
    assert "; 1 of 100 repetitions, 2 of 10 folds;" in title
    ids = json.loads((out / "submitit" / "jobs.json").read_text())["jobs"]
    assert [r["folders"] for r in ids] == [["bu3dfe-legacy/0/0"], ["bu3dfe-legacy/0/1"]]
    for record in ids:  # each job ran in a process of its own, which logged and wrote its result
        assert list((out / "submitit").rglob(f"{record['job_id']}*_log.out"))
        result_path = out / record["folders"][0] / "result.json"
        assert json.loads(result_path.read_text())["status"] == "ok"
    assert json.loads((out / "run.json").read_text())["launcher"] == "submitit-local"
    assert make_plan(_spec(small, out, repetitions=1, max_folds=2)).pending() == []


def test_local_process_pool_runs_jobs_in_spawned_workers(small, tmp_path):
    plan = make_plan(_spec(small, tmp_path / "run", repetitions=1, max_folds=2))
    summaries = run_pool(plan.jobs, 2, progress=False)
    assert [(s.folder, s.status) for s in summaries] == [
        ("bu3dfe-legacy/0/0", "ok"),
        ("bu3dfe-legacy/0/1", "ok"),
    ]
    for job in plan.jobs:  # written by the worker, for exactly this job
        result = json.loads(job.result_path.read_text())
        assert result["job"] == job.identity.to_json() and result["predictions"]


def test_a_run_json_from_an_earlier_version_gains_new_keys_on_resume(small, tmp_path):
    out = tmp_path / "run"
    run_local(make_plan(_spec(small, out, repetitions=1, max_folds=1)).jobs, progress=False)
    info = json.loads((out / "run.json").read_text())
    created = info["created"]
    del info["backbone_weights"]  # written before that key existed
    (out / "run.json").write_text(json.dumps(info))
    again = make_plan(_spec(small, out, repetitions=1, max_folds=1))
    assert again.pending() == []  # the finished fold is still recognised as this job's
    info = json.loads((out / "run.json").read_text())
    assert info["backbone_weights"] is None and info["created"] == created


def test_cross_dataset_and_holdout_protocols_have_one_split(tiny_merged, tmp_path):
    base, _, _ = tiny_merged
    items = items_from_h5(base / "merged.h5")
    for name in ("cross-dataset", "merged"):
        sp.write_manifest(sp.make_manifest(sp.load_protocol(name), items, "t"), tmp_path / "m")
    spec = EvalSpec(
        dataset=base / "merged.h5",
        protocols=("cross-dataset", "merged"),
        out=tmp_path / "run",
        manifests=tmp_path / "m",
        preset="tiny",
        overrides=dict(FAST),
        environment=CPU,
    )
    plan = make_plan(spec)
    assert [j.folder for j in plan.jobs] == ["cross-dataset/0/0", "merged/0/0"]
    cross, merged = run_local(plan.jobs, progress=False)
    assert cross.status == "ok"
    predicted = json.loads(plan.jobs[0].result_path.read_text())["predictions"]
    assert {s.split(":")[0] for s in predicted} == {"cald3r", "mend3s"}  # tested on these only
    # one subject per dataset: the 80/20 hold-out has no test subject, and says so
    assert merged.status == "failed" and "no test samples" in merged.reason
    report = json.loads(ev_report(tmp_path / "run").read_text())
    groups = {g["protocol"]: g for g in report["groups"]}
    assert groups["cross-dataset"]["aggregate"]["accuracy"]["std_across_repetitions"] is None
    assert "1 fold failed" in groups["merged"]["title"]


def ev_report(run_dir):
    return write_report(run_dir).json


def test_exclude_flagged_trains_without_them_records_it_and_names_it(small, tmp_path):
    out = tmp_path / "run"
    spec = _spec(small, out, protocols=("bu3dfe-full",), repetitions=1, max_folds=3)
    plan = make_plan(replace(spec, environment=replace(CPU, exclude_flagged=True)))
    assert all(job.identity.training.exclude_flagged for job in plan.jobs)
    assert json.loads((out / "run.json").read_text())["exclude_flagged"] is True
    run_local(plan.jobs, progress=False)
    manifest = sp.read_manifest(small / "m" / "bu3dfe-full" / "1.0.0.json")
    left_out = set()
    with H5Dataset(small / "merged.h5") as data:
        assert data.flagged.sum() >= 1  # the sample's planted misalignments
        for job in plan.jobs:
            result = json.loads(job.result_path.read_text())
            train_idx, test_idx = manifest.fold_indices(data, 0, job.identity.fold)
            flagged = sorted(data.sample_ids[i] for i in train_idx if data.flagged[i])
            assert result["training_left_out"] == flagged
            assert len(result["predictions"]) == len(test_idx)  # the test fold is untouched
            left_out |= set(flagged)
    assert left_out  # some fold had flagged samples to leave out
    title = json.loads(ev_report(out).read_text())["groups"][0]["title"]
    assert f"flagged samples left out of training ({len(left_out)} sample" in title
    with pytest.raises(ConfigError, match="trained without the samples flagged"):
        make_plan(spec)  # the same folder without --exclude-flagged


def _replace_in(run: Path, changes: dict[str, str]) -> None:
    """Each text replaced in the run folder's run.json and result.json files."""
    for path in [run / "run.json", *run.rglob("result.json")]:
        text = path.read_text()
        for before, after in changes.items():
            text = text.replace(before, after)
        path.write_text(text)


def _sha(config: dict) -> str:
    """A job's config_sha256 (records.job): of its configuration's canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_run_folder_written_by_0_7_resumes_without_retraining(small, tmp_path, monkeypatch):
    """The checked-in folder (tests/data/run-0.7.0, made by 0.7.0 on this same sample) is
    recognised as finished: its run.json merges and each result's job block equals the job this
    version plans. Its dataset fingerprint and manifest hash are set to this build's first, so
    that the test checks the run folder's format, not the renderer's pixels.

    Since 0.16 the one-cycle schedule starts at `min_lr` (it started at max / 25 and ended at
    `final_lr`): a folder of the old schedule is refused before anything trains, and only with
    its configuration renamed (and its hash made again) is it this version's configuration."""
    fixture = Path(__file__).parents[1] / "data" / "run-0.7.0"
    out = shutil.copytree(fixture, tmp_path / "run", ignore=shutil.ignore_patterns("make.py"))
    old = json.loads((fixture / "run.json").read_text())
    manifest = sp.read_manifest(small / "m" / "bu3dfe-legacy" / "1.0.0.json")
    with H5Dataset(small / "merged.h5") as data:
        now = {
            old["dataset"]["fingerprint"]: data.fingerprint,
            old["protocols"]["bu3dfe-legacy"]["manifest_sha256"]: manifest.sha256,
        }
    _replace_in(out, now)
    calls = _counting_train(monkeypatch)
    with pytest.raises(ConfigError, match=r"differs in final_lr 1e-06 -> '\(absent\)', min_lr"):
        make_plan(_spec(small, out, repetitions=1, max_folds=2))
    assert calls == []
    job = json.loads((out / "bu3dfe-legacy/0/0/result.json").read_text())["job"]
    config = job["config"]  # as 0.7 wrote the job block
    renamed = {("min_lr" if k == "final_lr" else k): v for k, v in config.items()}
    _replace_in(out, {'"final_lr"': '"min_lr"', job["config_sha256"]: _sha(renamed)})
    plan = make_plan(_spec(small, out, repetitions=1, max_folds=2))
    assert [j.folder for j in plan.jobs] == ["bu3dfe-legacy/0/0", "bu3dfe-legacy/0/1"]
    assert plan.pending() == []
    assert [s.skipped for s in run_local(plan.jobs, progress=False)] == [True, True]
    assert calls == []
    info = json.loads((out / "run.json").read_text())
    assert info["created"] == old["created"] and info["fer3d_bench_version"] == "0.7.0"
    assert info["resumed_with"][-1]["fer3d_bench_version"] != "0.7.0"
