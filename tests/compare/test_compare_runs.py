"""compare_runs and format_comparison on small written run folders: the numbers against hand
computations, the single split, the conditions, the variants, and every refusal."""

import math

import pytest
from compare_folders import predictions, write_folder
from scipy.stats import t as student_t

from fer3d_bench.compare import CompareError, compare_runs, format_comparison
from fer3d_bench.records.run import read_run_info, write_run_info

# right answers out of 10 per (repetition, fold): two subjects of five samples each
A_RIGHT = {(0, 0): 6, (0, 1): 7, (1, 0): 5, (1, 1): 8}  # mean 0.65
B_RIGHT = {(0, 0): 8, (0, 1): 8, (1, 0): 8, (1, 1): 9}  # mean 0.825


def _folds(right: dict) -> dict:
    return {
        (rep, fold): predictions(
            [n < hits for n in range(10)], subjects=[1 + 2 * fold, 2 + 2 * fold], per_subject=5
        )
        for (rep, fold), hits in right.items()
    }


def _pair(tmp_path, b_right=B_RIGHT, **b_options):
    # 50 samples in the manifest: each fold tests 10 and trains on 40, n_test/n_train 0.25
    a = write_folder(tmp_path / "a", _folds(A_RIGHT), samples=50)
    b = write_folder(tmp_path / "b", _folds(b_right), **({"samples": 50} | b_options))
    return a, b


def test_the_corrected_t_test_of_two_runs_against_the_formula_by_hand(tmp_path):
    a, b = _pair(tmp_path)
    comparison = compare_runs([a, b], resamples=500, seed=1)
    (row,) = comparison.rows
    assert row.folds == [(0, 0), (0, 1), (1, 0), (1, 1)] and row.repetitions == 2
    assert row.baseline.accuracy == pytest.approx(0.65)
    assert row.other.accuracy == pytest.approx(0.825)
    # d = 0.2, 0.1, 0.3, 0.1: mean 0.175; squared deviations sum to 0.0275, s² = 0.0275 / 3
    mean, s2 = 0.175, 0.0275 / 3
    scale = math.sqrt((1 / 4 + 10 / 40) * s2)  # 0.0677003
    half = student_t.ppf(0.975, 3) * scale
    assert row.accuracy.ratio == pytest.approx(0.25)
    assert row.accuracy.mean == pytest.approx(mean)
    assert row.accuracy.t == pytest.approx(mean / scale) and row.accuracy.df == 3
    assert (row.accuracy.low, row.accuracy.high) == pytest.approx((mean - half, mean + half))
    assert row.macro_f1.defined and row.mcnemar is None
    # pooled over every prediction: 26/40 vs 33/40
    assert row.bootstrap.estimate == pytest.approx(7 / 40) and row.bootstrap.subjects == 4
    assert "sample count" in row.ratio_source and "a/run.json" in row.ratio_source
    text = format_comparison(comparison)
    assert f"{a} (baseline)" in text and "65.00%" in text and "82.50%" in text
    assert f"+17.50 pp [{100 * (mean - half):+.2f}, {100 * (mean + half):+.2f}]" in text
    assert "n_test/n_train 0.2500" in text
    assert "corrected resampled t-test" in " ".join(text.split())
    assert "500 resamples of the test subjects, seed 1" in text


def test_equal_differences_in_every_fold_print_a_dash_and_why(tmp_path):
    a, b = _pair(tmp_path, b_right={p: n + 2 for p, n in A_RIGHT.items()})
    (row,) = compare_runs([a, b], resamples=200).rows
    assert row.accuracy.mean == pytest.approx(0.2) and row.accuracy.p is None
    text = format_comparison(compare_runs([a, b], resamples=200))
    assert "+20.00 pp —" in text and "zero variance" in text
    assert "nan" not in text.lower()


def test_a_single_split_gets_mcnemars_exact_test_with_its_counts(tmp_path):
    # 20 samples of 4 subjects: both right on 6, only A right on 2 (b), only B right on 8 (c)
    a_right = [True] * 6 + [True] * 2 + [False] * 8 + [False] * 4
    b_right = [True] * 6 + [False] * 2 + [True] * 8 + [False] * 4
    holdout = {"kind": "holdout", "protocol": "bu3dfe-holdout", "samples": 80}
    a = write_folder(tmp_path / "a", {(0, 0): predictions(a_right, [1, 2, 3, 4], 5)}, **holdout)
    b = write_folder(tmp_path / "b", {(0, 0): predictions(b_right, [1, 2, 3, 4], 5)}, **holdout)
    (row,) = compare_runs([a, b], resamples=300).rows
    assert (row.mcnemar.b, row.mcnemar.c) == (2, 8)
    assert row.mcnemar.p == pytest.approx(112 / 1024)  # 2 * (1 + 10 + 45) / 2^10
    assert row.accuracy.p is None and "one fold" in row.accuracy.reason
    assert row.bootstrap.estimate == pytest.approx(6 / 20)
    text = format_comparison(compare_runs([a, b], resamples=300))
    assert "b = 2 samples only" in text and "c = 8 only" in text and "p = 0.1094" in text
    assert "a single split" in text


def test_conditions_that_differ_are_a_warning_not_a_refusal(tmp_path):
    best = {p: predictions([True] * 10, [1 + 2 * p[1], 2 + 2 * p[1]], 5) for p in A_RIGHT}
    a, b = _pair(tmp_path, selection="best-test", best_test=best)
    (row,) = compare_runs([a, b], resamples=200).rows
    assert row.other.accuracy == 1.0  # the best-test epoch's predictions, as its run reports
    assert row.other.epoch_selection == "best-test"
    assert any("best test accuracy" in w for w in row.warnings)
    assert "warning: conditions differ" in format_comparison(compare_runs([a, b], resamples=200))


def test_a_submission_is_compared_in_its_own_variant_and_says_what_it_did_not_state(tmp_path):
    submission = {"predictions": "mine.csv", "sha256": "d" * 64, "model": "mine"}
    a, b = _pair(tmp_path, variant="mine", submission=submission)
    comparison = compare_runs([a, b], resamples=200)
    (row,) = comparison.rows
    assert (row.baseline.variant, row.other.variant) == ("full", "mine")
    assert "how the epoch was chosen not stated" in " ".join(row.warnings)
    json = comparison.to_json()
    assert json["rows"][0]["other"]["variant"] == "mine"
    assert json["bootstrap"] == {"method": "percentile", "resamples": 200, "seed": 0}
    with pytest.raises(CompareError, match="no fold results of variant 'other'"):
        compare_runs([a, b], variants=[None, "other"])


def test_runs_on_different_manifests_are_refused_naming_both(tmp_path):
    a, b = _pair(tmp_path, manifest_sha256="b" * 64)
    with pytest.raises(CompareError) as refused:
        compare_runs([a, b])
    message = str(refused.value)
    assert str(a) in message and str(b) in message and "\n" not in message
    assert "different manifests" in message
    assert "sha256 aaaaaaaaaaaa… vs bbbbbbbbbbbb…" in message


def test_runs_with_other_finished_folds_are_refused_naming_the_missing_ones(tmp_path):
    right = {p: n for p, n in B_RIGHT.items() if p != (1, 1)}
    a = write_folder(tmp_path / "a", _folds(A_RIGHT), samples=50)
    b = write_folder(tmp_path / "b", _folds(right), samples=50, failed=((1, 1),))
    with pytest.raises(CompareError, match=rf"{b} lacks repetition 1 fold 1"):
        compare_runs([a, b])


def test_runs_without_a_protocol_in_common_are_refused(tmp_path):
    a = write_folder(tmp_path / "a", _folds(A_RIGHT), samples=50)
    b = write_folder(tmp_path / "b", _folds(B_RIGHT), samples=50, protocol="bu3dfe-full")
    with pytest.raises(CompareError, match="no protocol in common .bu3dfe-legacy vs bu3dfe-full"):
        compare_runs([a, b])
    with pytest.raises(CompareError, match="two folders or more"):
        compare_runs([a])


def test_without_a_sample_count_the_t_test_says_why(tmp_path):
    a = write_folder(tmp_path / "a", _folds(A_RIGHT), manifest=str(tmp_path / "gone.json"))
    b = write_folder(tmp_path / "b", _folds(B_RIGHT))
    (row,) = compare_runs([a, b], resamples=200).rows
    assert row.accuracy.p is None and row.accuracy.mean == pytest.approx(0.175)
    assert "gone.json" in row.accuracy.reason and "n_test/n_train unknown" in row.accuracy.reason
    assert row.bootstrap.defined  # the bootstrap needs no fold sizes


def test_each_folder_after_the_first_is_compared_with_the_first(tmp_path):
    a, b = _pair(tmp_path)
    c = write_folder(tmp_path / "c", _folds(A_RIGHT), samples=50)
    comparison = compare_runs([a, b, c], resamples=200)
    assert [row.other.folder for row in comparison.rows] == [str(b), str(c)]
    assert comparison.rows[1].accuracy.mean == 0.0 and comparison.rows[1].bootstrap.low == 0.0
    text = format_comparison(comparison)
    assert text.count("(baseline)") == 1 and text.count("bu3dfe-legacy: kfold") == 1


def test_two_variants_of_one_folder_compare(tmp_path):
    """An ablation against the reference model of the same run: one folder, named twice."""
    a = write_folder(tmp_path / "a", _folds(A_RIGHT), samples=50)
    ablation = write_folder(tmp_path / "x", _folds(B_RIGHT), variant="no-depth")
    moved = a / "ablation-no-depth"
    (ablation / "ablation-no-depth").rename(moved)
    info = read_run_info(a / "run.json")
    info.variants["no-depth"] = {}
    write_run_info(a / "run.json", info)
    (row,) = compare_runs([a, a], variants=["full", "no-depth"], resamples=200).rows
    assert (row.baseline.variant, row.other.variant) == ("full", "no-depth")
    assert (row.baseline.accuracy, row.other.accuracy) == pytest.approx((0.65, 0.825))
