"""compare.stats on known numbers: every expected value worked out by hand below, scipy used
only for the t quantile."""

import math

import pytest
from scipy.stats import t as student_t

from fer3d_bench.compare import CompareError, corrected_t_test, mcnemar, subject_bootstrap
from fer3d_bench.sources import subject_of

# five fold differences (B − A), folds of 72 test and 648 training samples
D = [0.02, 0.05, -0.01, 0.04, 0.03]
RATIO = 72 / 648


def test_corrected_t_test_against_the_formula_by_hand():
    n = 5
    mean = (0.02 + 0.05 - 0.01 + 0.04 + 0.03) / n  # 0.026
    # deviations -0.006, 0.024, -0.036, 0.014, 0.004; squares sum to 0.00212; / (n - 1)
    s2 = 0.00212 / 4  # 0.00053
    corrected = (1 / n + 1 / 9) * s2  # 0.311111 * 0.00053 = 0.000164889
    t = mean / math.sqrt(corrected)  # 2.02477
    half = student_t.ppf(0.975, 4) * math.sqrt(corrected)  # 2.776445 * 0.0128409 = 0.035652

    test = corrected_t_test(D, RATIO)

    assert test.n == 5 and test.df == 4 and test.ratio == pytest.approx(1 / 9)
    assert test.mean == pytest.approx(0.026)
    assert test.t == pytest.approx(t) and test.t == pytest.approx(2.02477, abs=1e-5)
    assert test.low == pytest.approx(mean - half) and test.high == pytest.approx(mean + half)
    assert (test.low, test.high) == pytest.approx((-0.009652, 0.061652), abs=1e-6)
    # the two-sided p is the level at which |t| is the quantile: t.ppf(1 - p / 2) == |t|
    assert student_t.ppf(1 - test.p / 2, 4) == pytest.approx(t)
    assert 0.1 < test.p < 0.2  # |t| = 2.02 lies between t_{0.95, 4} = 2.13 and t_{0.9, 4} = 1.53
    # uncorrected (ratio 0) the interval is narrower: the correction widens it
    plain = corrected_t_test(D, 0.0)
    assert plain.high - plain.low < test.high - test.low and plain.p < test.p


def test_zero_variance_and_a_single_fold_are_undefined_with_a_reason():
    same = corrected_t_test([0.25, 0.25, 0.25, 0.25], RATIO)
    assert same.mean == 0.25
    assert (same.low, same.high, same.t, same.p) == (None, None, None, None)
    assert not same.defined and "zero variance" in same.reason
    one = corrected_t_test([0.1], None)
    assert one.mean == 0.1 and one.p is None and "one fold" in one.reason


def test_mcnemar_counts_the_discordant_pairs_and_tests_them_exactly():
    # 5 both right, 2 only A right (b), 8 only B right (c), 3 both wrong
    a = [True] * 5 + [True] * 2 + [False] * 8 + [False] * 3
    b = [True] * 5 + [False] * 2 + [True] * 8 + [False] * 3
    test = mcnemar(a, b)
    assert (test.b, test.c) == (2, 8)
    # P(X <= 2) for X ~ Binomial(10, 1/2), doubled: 2 * (1 + 10 + 45) / 1024
    assert test.p == pytest.approx(112 / 1024)
    assert mcnemar(b, a).p == pytest.approx(112 / 1024) and mcnemar(b, a).b == 8
    none = mcnemar([True, False], [True, False])
    assert none.p is None and (none.b, none.c) == (0, 0) and "only one" in none.reason


def _correctness(modulus: int, shift: int, subjects: int = 30) -> dict:
    """Sample -> [correct] for 3 to 6 samples of each subject, a fixed irregular pattern (no
    random numbers in the fixture)."""
    return {
        f"bu3dfe:F{s:04d}_AN{i:02d}": [(s * 7 + i * 3 + shift) % modulus != 0]
        for s in range(1, subjects + 1)
        for i in range(s % 4 + 3)
    }


def test_the_subject_bootstrap_is_reproducible_for_a_seed_and_moves_with_another():
    a, b = _correctness(5, 0), _correctness(3, 1)
    first = subject_bootstrap(a, b, subject_of, 2000, 7)
    again = subject_bootstrap(a, b, subject_of, 2000, 7)
    other = subject_bootstrap(a, b, subject_of, 2000, 8)
    assert first == again
    assert (other.low, other.high) != (first.low, first.high)
    assert other.estimate == first.estimate  # the estimate is not resampled
    hits_a, hits_b = sum(v[0] for v in a.values()), sum(v[0] for v in b.values())
    assert first.estimate == pytest.approx((hits_b - hits_a) / len(a))
    assert first.low < first.estimate < first.high
    assert (first.subjects, first.samples, first.resamples, first.seed) == (30, 135, 2000, 7)
    assert first.method == "percentile"


def test_the_bootstrap_pools_each_side_over_its_own_predictions():
    """A tested each sample twice, B once (two manifests over the same samples): each side's
    accuracy is its own hits over its own predictions."""
    a = {"bu3dfe:F0001_AN01": [True, True], "bu3dfe:F0002_AN01": [False, True]}  # 3/4
    b = {"bu3dfe:F0001_AN01": [False], "bu3dfe:F0002_AN01": [True]}  # 1/2
    interval = subject_bootstrap(a, b, subject_of, 500, 0)
    assert interval.estimate == pytest.approx(0.5 - 0.75)
    assert interval.low <= interval.estimate <= interval.high


def test_agreeing_sides_give_a_zero_interval_and_one_subject_none():
    a = _correctness(5, 0)
    assert subject_bootstrap(a, a, subject_of, 200, 0).low == 0.0
    lone = {"bu3dfe:F0001_AN01": [True], "bu3dfe:F0001_AN02": [False]}
    interval = subject_bootstrap(lone, lone, subject_of, 200, 0)
    assert interval.low is None and "nothing to resample" in interval.reason


def test_the_bootstrap_refuses_other_samples_and_unknown_subjects():
    with pytest.raises(CompareError, match="only one"):
        subject_bootstrap(
            {"bu3dfe:F0001_AN01": [True]}, {"bu3dfe:F0002_AN01": [True]}, subject_of, 10, 0
        )
    with pytest.raises(CompareError, match="no known dataset"):
        subject_bootstrap({"x:1": [True]}, {"x:1": [False]}, subject_of, 10, 0)
