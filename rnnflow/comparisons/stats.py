"""Paired comparisons of models scored on the same test reviews.

Every point of a plan scores the same test split, so two points can be compared review by
review, which is far more sensitive than comparing two accuracies: the reviews both get right
or both get wrong cancel out.

- `mcnemar_exact`: McNemar's exact test on the reviews where exactly one model is right.
- `paired_bootstrap`: the difference in accuracy with a percentile interval, resampling reviews.
  With repeats, each review's score is the share of a point's repeats that got it right.

Neither accounts for seed noise between repeats; `repeats` (mean +- std) shows that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def predicted(frame) -> np.ndarray:
    """Per review of a predictions table (in its row order), the class it is given: the
    `predicted` column (k classes), or the probability of class 1 read at 0.5 (two classes)."""
    if "predicted" in frame.columns:
        return frame.predicted.to_numpy().astype(int)
    return (frame.probability.to_numpy() >= 0.5).astype(int)


def correct(frame) -> np.ndarray:
    """Per review of a predictions table (in its row order), whether the model got it right:
    its `predicted` class is the label."""
    return predicted(frame) == frame.label.to_numpy().astype(int)


def mcnemar_exact(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """Two-sided p-value that models a and b are equally accurate, from per-review correctness
    (booleans, same reviews in the same order)."""
    a, b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(stats.binomtest(only_a, n, 0.5).pvalue)


@dataclass(frozen=True)
class Difference:
    """Accuracy of a minus accuracy of b, with its interval at `level`."""

    delta: float
    low: float
    high: float
    level: float

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0: a and b differ at this level."""
        return self.low > 0 or self.high < 0


def paired_bootstrap(score_a: np.ndarray, score_b: np.ndarray, resamples: int = 2000,
                     level: float = 0.95, seed: int = 0) -> Difference:
    """Percentile bootstrap of mean(score_a - score_b) over reviews. Scores are per review:
    1/0 correctness, or the share of repeats that got the review right."""
    diff = np.asarray(score_a, float) - np.asarray(score_b, float)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError("expected two equally long, non-empty score vectors")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(diff))  # resamples drawn at once, bounded in memory
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(float(diff.mean()), float(low), float(high), level)
