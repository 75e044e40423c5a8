"""The three tests of a paired comparison, each on plain numbers: no run folder, no manifest.

- `corrected_t_test`: Nadeau & Bengio's (2003) corrected resampled t-test over the (repetition,
  fold) differences of repeated k-fold or repeated hold-out. The folds' training sets overlap,
  so their scores are correlated and the plain t-test's variance s²/n is too small; the
  correction uses (1/n + n_test/n_train) s² instead.
- `mcnemar`: McNemar's exact test on one split, from the samples only one side got right.
- `subject_bootstrap`: an interval of the pooled accuracy difference that resamples test
  subjects, not samples: one person's samples are not independent of each other.

Every difference is B minus A (the other side minus the baseline), as a fraction. A test that
cannot be computed says why (`reason`) and holds None, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from fer3d_bench.errors import Fer3dError

CONFIDENCE = 0.95
BOOTSTRAP_METHOD = "percentile"
# differences closer than this are equal: scores are ratios of counts, so two that truly differ
# lie at least 1/(n1 n2) apart, far above it for any fold below a million samples, while the
# same difference computed from other counts (0.8 - 0.6, 0.9 - 0.7) differs in the last bits
EQUAL = 1e-12
BATCH = 1000  # resamples held at once: 1,000 x subjects x 4 numbers, bounded for large data


class CompareError(Fer3dError):
    """Two results cannot be compared as they stand; the message names both and why."""


@dataclass(frozen=True)
class TTest:
    """The corrected resampled t-test of `n` paired fold differences (fractions)."""

    n: int
    mean: float | None  # d̄, the mean difference; None only without any fold
    ratio: float | None  # n_test / n_train of the correction
    low: float | None = None
    high: float | None = None
    t: float | None = None
    df: int | None = None
    p: float | None = None
    reason: str = ""  # why there is no interval and p, when there is none

    @property
    def defined(self) -> bool:
        return self.p is not None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on one split: b samples only A got right, c only B got right."""

    b: int
    c: int
    p: float | None
    reason: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval of the pooled accuracy difference B − A (fractions), over
    `subjects` resampled with replacement `resamples` times from the generator of `seed`."""

    estimate: float | None
    low: float | None
    high: float | None
    method: str
    confidence: float
    resamples: int
    seed: int
    subjects: int
    samples: int
    reason: str = ""

    @property
    def defined(self) -> bool:
        return self.low is not None

    def to_json(self) -> dict:
        return asdict(self)


def corrected_t_test(differences: Sequence[float], ratio: float | None) -> TTest:
    """Nadeau & Bengio's corrected resampled t-test of the per-fold differences d_j (j = 1..n):
    t = d̄ / sqrt((1/n + ratio) s²), n − 1 degrees of freedom, two-sided p, and the interval
    d̄ ± t_{0.975, n−1} sqrt((1/n + ratio) s²); `ratio` is n_test / n_train of a fold, which
    may be None only where there are fewer than two folds (nothing to correct)."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0:
        return TTest(n=0, mean=None, ratio=ratio, reason="no fold in common")
    mean = float(d.mean())
    if n < 2:
        return TTest(n=n, mean=mean, ratio=ratio, reason="one fold: no variance to test against")
    if np.allclose(d, d[0], rtol=0, atol=EQUAL):
        return TTest(
            n=n,
            mean=mean,
            ratio=ratio,
            reason="every fold's difference is the same (zero variance)",
        )
    if ratio is None or ratio < 0:
        raise CompareError(f"the corrected t-test needs n_test/n_train >= 0, not {ratio}")
    variance = (1 / n + ratio) * float(d.var(ddof=1))
    scale = math.sqrt(variance)
    df = n - 1
    t = mean / scale
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, df)) * scale
    p = float(2 * stats.t.sf(abs(t), df))
    return TTest(n=n, mean=mean, ratio=ratio, low=mean - half, high=mean + half, t=t, df=df, p=p)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemar:
    """McNemar's exact test on the same samples of one split: under the null hypothesis the
    b + c samples exactly one side got right fall to either side with probability 1/2."""
    if len(correct_a) != len(correct_b):
        raise CompareError(
            f"McNemar's test needs the same samples: {len(correct_a)} vs {len(correct_b)}"
        )
    b = sum(1 for a, other in zip(correct_a, correct_b, strict=True) if a and not other)
    c = sum(1 for a, other in zip(correct_a, correct_b, strict=True) if other and not a)
    if b + c == 0:
        return McNemar(b=0, c=0, p=None, reason="no sample only one of the two got right")
    return McNemar(b=b, c=c, p=float(stats.binomtest(b, b + c, 0.5).pvalue))


def subject_bootstrap(
    correct_a: dict[str, list[bool]],
    correct_b: dict[str, list[bool]],
    subject_of: Callable[[str], str | None],
    resamples: int,
    seed: int,
) -> Interval:
    """The percentile bootstrap interval of pooled accuracy B − A, resampling test subjects.

    Each dict maps a sample id to its correctness in every repetition it was tested in; A and
    B must hold the same samples, but may have tested each a different number of times (two
    manifests over the same samples). Each side's accuracy is its correct predictions over its
    predictions, pooled over the resampled subjects (paired: one draw of subjects for both).
    Percentile, not BCa: the statistic is a ratio of sums over many subjects, close to
    symmetric, and the percentile interval stays defined when A and B agree everywhere
    (BCa's acceleration is then 0/0). The same seed gives the same interval.
    """
    if set(correct_a) != set(correct_b):
        only = sorted(set(correct_a) ^ set(correct_b))
        raise CompareError(
            f"the bootstrap needs both sides on the same samples; {len(only)} are tested by "
            f"only one (first: {only[0]})"
        )
    if resamples < 1:
        raise CompareError(f"the bootstrap needs at least one resample, not {resamples}")
    counts: dict[str, list[int]] = {}  # subject -> [hits A, predictions A, hits B, predictions B]
    for sample in sorted(correct_a):
        a, b = correct_a[sample], correct_b[sample]
        if not a or not b:
            raise CompareError(f"sample {sample} has no prediction on one side")
        subject = subject_of(sample)
        if subject is None:
            raise CompareError(f"sample {sample}: no known dataset names its subject")
        tally = counts.setdefault(subject, [0, 0, 0, 0])
        tally[0] += sum(map(bool, a))
        tally[1] += len(a)
        tally[2] += sum(map(bool, b))
        tally[3] += len(b)
    columns = np.array([counts[s] for s in sorted(counts)], dtype=float).T
    estimate = float(_pooled_difference(*columns))
    shape = dict(
        method=BOOTSTRAP_METHOD,
        confidence=CONFIDENCE,
        resamples=resamples,
        seed=seed,
        subjects=len(counts),
        samples=len(correct_a),
    )
    if len(counts) < 2:
        reason = f"{len(counts)} test subject: nothing to resample"
        return Interval(estimate=estimate, low=None, high=None, reason=reason, **shape)
    result = stats.bootstrap(
        tuple(columns),
        _pooled_difference,
        n_resamples=resamples,
        paired=True,
        vectorized=True,
        confidence_level=CONFIDENCE,
        method=BOOTSTRAP_METHOD,
        batch=BATCH,
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(estimate=estimate, low=float(low), high=float(high), **shape)


def _pooled_difference(hits_a, n_a, hits_b, n_b, axis=-1):
    """Pooled accuracy of B minus that of A, over the subjects along `axis`."""
    return np.sum(hits_b, axis=axis) / np.sum(n_b, axis=axis) - np.sum(hits_a, axis=axis) / np.sum(
        n_a, axis=axis
    )
