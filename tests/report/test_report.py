"""report: fold metrics, protocol aggregation and the written report, against hand-computed numbers.

Every expected number below is worked out by hand in a comment, never recomputed with report.py.
"""

import json
import math
from pathlib import Path

import pytest

from fer3d_bench.errors import Fer3dError
from fer3d_bench.metrics import fold_metrics
from fer3d_bench.records.group import FailedFold
from fer3d_bench.records.report import Report
from fer3d_bench.records.result import FoldResult
from fer3d_bench.records.run import flat_config
from fer3d_bench.report import write_report
from fer3d_bench.report.aggregate import aggregate as aggregate_records
from fer3d_bench.report.build import build_report
from fer3d_bench.report.load import load_run
from fer3d_bench.report.published import load_published
from fer3d_bench.report.tables import format_tables
from fer3d_bench.train.config import PRESETS

A, D, F, H = "anger", "disgust", "fear", "happiness"
TWO = [A, H]
PNG = b"\x89PNG\r\n\x1a\n"
CONFIG = {"epochs": 3, "model": {"backbone": "test_efficientnet"}, "seed": 0}  # as recorded
PAPER_CONFIG = PRESETS["paper"].as_dict()
# the weights record of a run with the file the paper's text names (weights.known.weights_record)
PAPER_WEIGHTS = {
    "pretrained": True,
    "file": "state_vggface2_enet2.pt",
    "sha256": "5" * 64,
    "known": "state_vggface2_enet2",
    "trained_on": "VGGFace2 face identification",
    "paper": "named by the paper's text",
    "backbone": "tf_efficientnet_b2",
    "architecture_mismatch": False,
}
NAN_REASON = "loss became nan in epoch 3"

# Legacy-like kfold, 2 repetitions x 3 folds of different sizes, classes anger (A), happiness (H);
# (true, pred) pairs per (repetition, fold).
LEGACY = {
    (0, 0): [(A, A), (H, H)],  # 2/2 = 1.0
    (0, 1): [(A, A), (H, H), (A, H), (H, A)],  # 2/4 = 0.5
    (0, 2): [(A, A), (A, A), (H, H), (A, H)],  # 3/4 = 0.75
    (1, 0): [(A, A), (A, A), (H, H), (H, H), (H, H)],  # 5/5 = 1.0
    (1, 1): [(A, A), (A, H)],  # 1/2 = 0.5
    (1, 2): [(H, A), (H, A), (A, H)],  # 0/3 = 0.0
}


def aggregate(results, kind):
    """`aggregate` of result.json bodies, read as the report reads them."""
    return aggregate_records([FoldResult.from_json(r, Path("result.json")) for r in results], kind)


def result(variant, protocol, rep, fold, pairs, classes=TWO, status="ok", **job):
    """A result.json body as evaluate writes it; `job` overrides the hashes."""
    predictions = {
        f"s{rep}_{fold}_{i:02d}": {"true": t, "pred": p} for i, (t, p) in enumerate(pairs)
    }
    history = [
        {"epoch": e, "loss_total": 2.0 / e + fold, "val_accuracy": 0.2 * e} for e in (1, 2, 3)
    ]
    return {
        "schema": "fer3d-bench/result/1",
        "job": {
            "variant": variant,
            "protocol": protocol,
            "protocol_version": "1.0.0",
            "repetition": rep,
            "fold": fold,
            "config": {"epochs": 3},
            "seed": 0,
            **{
                "config_sha256": "c" * 64,
                "manifest_sha256": "m" * 64,
                "dataset_fingerprint": "f" * 64,
            },
            **job,
        },
        "status": status,
        "reason": NAN_REASON if status == "failed" else None,
        "classes": list(classes),
        "predictions": predictions if status == "ok" else {},
        "metrics": None,
        "history": history,
        "checkpoint": f"{protocol}/{rep}/{fold}/last.pt",
        "device": "cpu",
        "seconds": 10.0,
        "started": "2026-11-29T15:00:00+00:00",
        "finished": "2026-11-29T15:00:10+00:00",
        "fer3d_bench_version": "0.6.0",
    }


def protocol_spec(kind, classes, reps_total, folds_total, reps_run, folds_run):
    return {
        "version": "1.0.0",
        "kind": kind,
        "manifest": "data_manifests/x.json",
        "manifest_sha256": "m" * 64,
        "classes": list(classes),
        "repetitions_total": reps_total,
        "folds_total": folds_total,
        "repetitions_run": reps_run,
        "folds_run": folds_run,
    }


def write_run(folder, protocols, results, config=CONFIG, variants=("full",), weights=PAPER_WEIGHTS):
    """A synthetic run folder: run.json plus one result.json per result, in evaluate's layout."""
    folder.mkdir(parents=True, exist_ok=True)
    info = {
        "schema": "fer3d-bench/run/1",
        "name": folder.name,
        "dataset": {"path": "merged.h5", "fingerprint": "f" * 64},
        "preset": "tiny",
        "overrides": {"epochs": 3},
        "weights": weights,
        "reference": {"paper": flat_config(PAPER_CONFIG)},
        "variants": {v: config for v in variants},
        "protocols": protocols,
        "launcher": "local",
        "fer3d_bench_version": "0.6.0",
        "git_commit": "abc123",
        "git_dirty": False,
        "device": "cpu",
        "environment": {"python": "3.11.9", "torch": "2.4", "timm": "1.0", "platform": "linux"},
        "created": "2026-11-29T15:00:00+00:00",
    }
    (folder / "run.json").write_text(json.dumps(info, indent=1))
    for r in results:
        job = r["job"]
        prefix = "" if job["variant"] == "full" else f"ablation-{job['variant']}/"
        path = folder / f"{prefix}{job['protocol']}/{job['repetition']}/{job['fold']}/result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=1))
    return folder


def legacy_results(variant="full", failed=()):
    """LEGACY as results; a failed fold's last epoch has a nan loss, as a diverged run would."""
    results = []
    for (rep, fold), pairs in LEGACY.items():
        status = "failed" if (rep, fold) in failed else "ok"
        results.append(result(variant, "bu3dfe-legacy", rep, fold, pairs, status=status))
        if status == "failed":
            results[-1]["history"][-1]["loss_total"] = float("nan")
    return results


# ------------------------------------------------------------------------- fold_metrics


def test_fold_metrics_by_hand():
    classes = [A, D, F, H]
    true = [A, A, A, D, D, F]
    pred = [A, A, D, D, H, A]
    m = fold_metrics(true, pred, classes)
    # confusion (rows true, columns predicted; order A D F H):
    #   A: A A D -> [2, 1, 0, 0];  D: D H -> [0, 1, 0, 1];  F: A -> [1, 0, 0, 0];  H: none
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(3 / 6)  # diagonal 2 + 1 + 0
    # F1: A P=2/3 R=2/3 -> 2/3; D P=1/2 R=1/2 -> 1/2; F P=0 R=0 -> 0; H (predicted once, never
    # true) P=0 R=0 -> 0. All four occur in true or pred: macro = (2/3 + 1/2) / 4 = 7/24.
    assert m["macro_f1"] == pytest.approx(7 / 24)
    assert m["recall"] == {A: pytest.approx(2 / 3), D: pytest.approx(0.5), F: 0.0, H: None}


def test_fold_metrics_ignores_classes_absent_from_true_and_pred():
    # Only A and H occur: A P=1 R=1/2 -> 2/3; H P=1/2 R=1 -> 2/3; macro 2/3 (D, F left out).
    m = fold_metrics([A, A, H], [A, H, H], [A, D, F, H])
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_fold_metrics_refuses_unknown_label():
    with pytest.raises(Fer3dError, match="contempt"):
        fold_metrics([A, "contempt"], [A, A], [A, H])


# ------------------------------------------------------------------------- aggregate


def test_aggregate_legacy_averages_within_repetitions_first():
    summary = aggregate(legacy_results(), "kfold")
    reps = summary.repetitions
    # repetition 0: folds 1.0, 0.5, 0.75 -> mean 0.75; deviations .25 -.25 0 -> var .125/2, std .25
    assert reps[0].folds == 3
    assert reps[0].accuracy.mean == pytest.approx(0.75)
    assert reps[0].accuracy.std == pytest.approx(0.25)
    # repetition 1: folds 1.0, 0.5, 0.0 -> mean 0.5; deviations .5 0 -.5 -> var .5/2 -> std .5
    assert reps[1].accuracy.mean == pytest.approx(0.5)
    assert reps[1].accuracy.std == pytest.approx(0.5)
    # across repetitions: mean (0.75 + 0.5)/2 = 0.625; std of (0.75, 0.5), ddof 1 = 0.125 * sqrt 2
    acc = summary.accuracy
    assert acc.mean == pytest.approx(0.625)
    assert acc.std_across_repetitions == pytest.approx(0.125 * math.sqrt(2))
    assert acc.mean_std_within_repetitions == pytest.approx((0.25 + 0.5) / 2)
    # pooling all 20 samples would give 13/20 = 0.65: the protocol's value is 0.625, not that.
    assert acc.mean != pytest.approx(13 / 20)
    # macro-F1, repetition 0: fold 0 perfect -> 1; fold 1 A P=R=1/2, H P=R=1/2 -> 1/2;
    # fold 2 A P=1 R=2/3 -> 4/5, H P=1/2 R=1 -> 2/3 -> 11/15; mean (1 + 1/2 + 11/15)/3 = 67/90
    assert reps[0].macro_f1.mean == pytest.approx(67 / 90)
    # summed confusion: true A -> A 1+1+2+2+1 = 7, -> H 1+1+1+1 = 4; true H -> A 1+2 = 3,
    # -> H 1+1+1+3 = 6; row-normalised [7/11, 4/11], [3/9, 6/9]
    assert summary.confusion.counts == [[7, 4], [3, 6]]
    normalised = summary.confusion.normalised
    assert normalised[0] == pytest.approx([7 / 11, 4 / 11])
    assert normalised[1] == pytest.approx([1 / 3, 2 / 3])
    assert summary.recall == {A: pytest.approx(7 / 11), H: pytest.approx(2 / 3)}
    assert (summary.folds_ok, summary.folds_failed) == (6, 0)


def test_aggregate_single_repetition_five_folds():
    # folds of 10 samples with 6..10 correct: 0.6 .. 1.0; mean 0.8; deviations -.2 -.1 0 .1 .2,
    # squares sum 0.1, / 4 -> var 0.025 -> std sqrt(0.025)
    results = [
        result("full", "bu3dfe-full", 0, k, [(A, A)] * (6 + k) + [(A, H)] * (4 - k))
        for k in range(5)
    ]
    acc = aggregate(results, "kfold").accuracy
    assert acc.mean == pytest.approx(0.8)
    assert acc.mean_std_within_repetitions == pytest.approx(math.sqrt(0.025))
    assert acc.std_across_repetitions is None


def test_aggregate_holdout_has_no_std():
    summary = aggregate(
        [result("full", "merged", 0, 0, [(A, A), (H, H), (H, H), (A, H)])], "holdout"
    )
    assert summary.accuracy.mean == pytest.approx(0.75)
    assert summary.accuracy.std_across_repetitions is None
    assert summary.accuracy.mean_std_within_repetitions is None


def test_failed_fold_is_counted_not_aggregated():
    summary = aggregate(legacy_results(failed={(1, 2)}), "kfold")
    # repetition 1 keeps folds 1.0 and 0.5 -> 0.75; repetition 0 stays 0.75 -> mean 0.75
    assert summary.accuracy.mean == pytest.approx(0.75)
    assert summary.repetitions[1].folds == 2
    assert (summary.folds_ok, summary.folds_failed) == (5, 1)
    assert summary.failed == [FailedFold(repetition=1, fold=2, reason=NAN_REASON)]
    assert summary.to_json()["failed"] == [{"repetition": 1, "fold": 2, "reason": NAN_REASON}]
    # the failed fold's three samples are not in the summed confusion: 20 - 3 = 17
    assert sum(map(sum, summary.confusion.counts)) == 17


# ------------------------------------------------------------------------- the written report

NAMED = ", backbones pretrained as in the paper (state_vggface2_enet2, named by the paper's text)"
LEGACY_TITLE = (
    f"bu3dfe-legacy 1.0.0{NAMED} — TRUNCATED: 2 of 100 repetitions, 3 of 10 folds; configuration"
    " differs from the paper (epochs 3 vs 20, model.backbone test_efficientnet vs"
    " tf_efficientnet_b2); 1 fold failed"
)


def synthetic_run(tmp_path):
    protocols = {
        "bu3dfe-legacy": protocol_spec("kfold", TWO, 100, 10, 2, 3),
        "merged": protocol_spec("holdout", TWO, 1, 1, 1, 1),
    }
    results = [
        *legacy_results(failed={(1, 2)}),
        result("full", "merged", 0, 0, [(A, A), (H, H), (H, H), (A, H)]),  # 3/4
        result("rgb-only", "merged", 0, 0, [(A, A), (H, A), (H, H), (A, H)]),  # 2/4
    ]
    results[-1]["history"] = []  # no history, so no curves figure for it
    return write_run(tmp_path / "runs" / "demo", protocols, results, variants=("full", "rgb-only"))


def test_write_report_end_to_end(tmp_path):
    folder = synthetic_run(tmp_path)
    paths = write_report(folder)
    markdown = paths.markdown.read_text()
    assert f"### {LEGACY_TITLE}" in markdown
    assert f"merged 1.0.0{NAMED} — TRUNCATED: configuration differs from the paper" in markdown
    for method in ("MFEViT (2021)", "CMANet (2022)", "CMFN (2023)", "AFNet (2023)"):
        assert f"| {method} |" in markdown
    assert "published, not reproduced by fer3d-bench" in markdown
    assert "arXiv:2109.13086" in markdown and "Hanting Li" in markdown
    assert NAN_REASON in markdown
    # our legacy row: repetitions 0.75 and 0.75 -> 75.00 ± 0.00; 5 of 6 folds ok
    assert "75.00 ± 0.00 across 2 repetitions" in markdown and "| 5 / 6 |" in markdown
    # ablation: rgb-only 50% vs full 75% on merged -> -25.00 points
    assert "-25.00 points" in markdown
    names = {p.name for p in paths.figures}
    assert names == {
        "full_bu3dfe-legacy_confusion.png",
        "full_bu3dfe-legacy_curves.png",
        "full_merged_confusion.png",
        "full_merged_curves.png",
        "rgb-only_merged_confusion.png",
    }
    assert all(p.parent == folder / "figures" and p.read_bytes()[:8] == PNG for p in paths.figures)

    text = paths.json.read_text()
    report = json.loads(text)
    assert json.dumps(report, sort_keys=True, indent=1, ensure_ascii=False) + "\n" == text
    assert report["run"]["git_commit"] == "abc123"
    assert report["timings"]["total_seconds"] == pytest.approx(80.0)  # 8 result files x 10 s
    legacy = report["groups"][0]
    assert (legacy["variant"], legacy["protocol"], legacy["title"]) == (
        "full",
        "bu3dfe-legacy",
        LEGACY_TITLE,
    )
    assert {f["result"] for f in legacy["aggregate"]["folds"]} >= {"bu3dfe-legacy/1/2/result.json"}
    assert sorted(report["figures"]) == sorted(f"figures/{n}" for n in names)

    again = write_report(folder)
    assert again.json.read_text() == text
    assert again.markdown.read_text() == markdown
    assert format_tables(Report.from_json(report, paths.json)) in markdown


def test_missing_fold_and_full_protocol_titles(tmp_path):
    protocols = {
        "bu3dfe-full": protocol_spec("kfold", TWO, 1, 5, 1, 5),
        "merged": protocol_spec("holdout", TWO, 1, 1, 1, 1),
    }
    results = [result("full", "bu3dfe-full", 0, k, [(A, A), (H, A)]) for k in range(4)]
    results.append(result("full", "merged", 0, 0, [(A, A)]))
    run = load_run(write_run(tmp_path / "r", protocols, results, config=PAPER_CONFIG))
    report = build_report(run, load_published())  # no figures needed here
    titles = [g.title for g in report.groups]
    assert titles == [
        f"bu3dfe-full 1.0.0{NAMED} — TRUNCATED: 1 fold missing",
        f"merged 1.0.0{NAMED}",
    ]


# ------------------------------------------------------------------------- load_run errors


def test_load_run_without_run_json(tmp_path):
    with pytest.raises(Fer3dError, match="run.json"):
        load_run(tmp_path)


def test_load_run_names_a_truncated_result(tmp_path):
    folder = synthetic_run(tmp_path)
    damaged = folder / "bu3dfe-legacy" / "0" / "1" / "result.json"
    damaged.write_text(damaged.read_text()[:100])
    with pytest.raises(Fer3dError, match="truncated") as error:
        load_run(folder)
    assert str(damaged) in str(error.value)


def test_load_run_refuses_mixed_configs_in_one_group(tmp_path):
    results = legacy_results()
    results[4]["job"]["config_sha256"] = "d" * 64
    protocols = {"bu3dfe-legacy": protocol_spec("kfold", TWO, 100, 10, 2, 3)}
    with pytest.raises(Fer3dError, match="config_sha256") as error:
        load_run(write_run(tmp_path / "r", protocols, results))
    assert "bu3dfe-legacy/1/1/result.json" in str(error.value)


# ------------------------------------------------- weights and the protocols' paper settings


def titles(tmp_path, weights, config=PAPER_CONFIG, full=None):
    protocols = {"merged": protocol_spec("holdout", TWO, 1, 1, 1, 1)}
    if full is not None:
        protocols["bu3dfe-full"] = {**protocol_spec("kfold", TWO, 1, 1, 1, 1), **full}
    results = [result("full", p, 0, 0, [(A, A), (H, H)]) for p in protocols]
    run = load_run(write_run(tmp_path / "r", protocols, results, config=config, weights=weights))
    return {g.protocol: g.title for g in build_report(run, load_published()).groups}


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        ({"pretrained": False}, "not pretrained"),
        (
            {**PAPER_WEIGHTS, "known": "unknown", "paper": "", "file": "mine.pt"},
            "pretrained differently from the paper (mine.pt, sha256 555555555555…, not a known",
        ),
        (
            {**PAPER_WEIGHTS, "known": "enet_b2_8", "paper": "", "trained_on": "AffectNet 8"},
            "pretrained differently from the paper (enet_b2_8: AffectNet 8)",
        ),
        (
            {**PAPER_WEIGHTS, "architecture_mismatch": True, "backbone": "efficientnet_b2"},
            "(state_vggface2_enet2 loaded into efficientnet_b2 by --allow-architecture-mismatch)",
        ),
        (None, "not pretrained"),  # run.json of 0.9 or earlier, without weights
    ],
)
def test_weights_other_than_the_papers_truncate_the_title(tmp_path, weights, words):
    title = titles(tmp_path, weights)["merged"]
    assert title.startswith("merged 1.0.0 — TRUNCATED: ") and words in title
    assert "as in the paper" not in title


def test_the_papers_weights_are_named_and_truncate_nothing(tmp_path):
    for known, use in [
        ("state_vggface2_enet2", "named by the paper's text"),
        ("enet_b2_7", "loaded by the paper's code"),
    ]:
        weights = {**PAPER_WEIGHTS, "known": known, "paper": use}
        assert titles(tmp_path / known, weights)["merged"] == (
            f"merged 1.0.0, backbones pretrained as in the paper ({known}, {use})"
        )


def test_a_weights_file_of_0_9_is_not_called_the_papers(tmp_path):
    """0.9 recorded the file's name and sha256 only: the report cannot say which file it was."""
    folder = tmp_path / "r"
    protocols = {"merged": protocol_spec("holdout", TWO, 1, 1, 1, 1)}
    results = [result("full", "merged", 0, 0, [(A, A)])]
    write_run(folder, protocols, results, config=PAPER_CONFIG, weights=None)
    info = folder / "run.json"
    info.write_text(
        info.read_text().replace(
            '"weights": null', '"backbone_weights": {"file": "x.pt", "sha256": "ab"}'
        )
    )
    title = build_report(load_run(folder), load_published()).groups[0].title
    assert "pretrained from x.pt, not identified (planned before fer3d-bench 0.10)" in title


def test_a_protocols_train_table_is_the_papers_setting_for_it(tmp_path):
    """bu3dfe-full's paper batch is 256: the paper preset took it (no difference); a run that
    overrode it, or a smaller preset, differs from 256, not from the preset's 128."""
    full = {"train_defaults": {"effective_batch": 256}, "train_applied": {"effective_batch": 256}}
    got = titles(tmp_path / "a", PAPER_WEIGHTS, full=full)
    assert "TRUNCATED" not in got["bu3dfe-full"] and "TRUNCATED" not in got["merged"]
    overridden = {**full, "train_applied": {}}
    got = titles(tmp_path / "b", PAPER_WEIGHTS, {**PAPER_CONFIG, "effective_batch": 64}, overridden)
    assert "configuration differs from the paper (effective_batch 64 vs 256)" in got["bu3dfe-full"]
    assert "(effective_batch 64 vs 128)" in got["merged"]
