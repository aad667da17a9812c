"""Paired tests on synthetic predictions whose answer is known."""

import math

import numpy as np
import pytest

from rnnflow.comparisons.stats import mcnemar_exact, paired_bootstrap


def test_mcnemar_matches_the_binomial_by_hand():
    # 10 reviews only a gets right, 2 only b: p = 2 * P(X <= 2), X ~ Bin(12, 0.5).
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 38, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 38, bool)
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert mcnemar_exact(a, b) == pytest.approx(expected)
    assert mcnemar_exact(a, a) == 1.0


def test_a_clearly_better_model_is_distinguishable():
    rng = np.random.default_rng(0)
    truth_a = rng.random(5000) < 0.85  # 85% right
    truth_b = truth_a & (rng.random(5000) < 0.9)  # b loses 10% of a's right answers
    diff = paired_bootstrap(truth_a, truth_b)
    assert diff.delta == pytest.approx(truth_a.mean() - truth_b.mean())
    assert diff.low > 0 and diff.distinguishable
    assert mcnemar_exact(truth_a, truth_b) < 1e-6


def test_two_draws_of_the_same_model_are_not():
    rng = np.random.default_rng(1)
    a = rng.random(5000) < 0.8
    b = rng.random(5000) < 0.8  # same accuracy, independent errors
    diff = paired_bootstrap(a, b, seed=3)
    assert diff.low < 0 < diff.high and not diff.distinguishable
    assert mcnemar_exact(a, b) > 0.05


def test_interval_covers_the_true_difference_at_about_its_level():
    """Over many synthetic test sets with a known difference of 2 points, the 95% interval
    holds the truth in about 95% of them."""
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(60):
        a = rng.random(2000) < 0.80
        b = np.where(rng.random(2000) < 0.5, a, rng.random(2000) < 0.78)
        # b's expected accuracy: half a's answers, half an independent 78% model.
        true_delta = 0.80 - (0.5 * 0.80 + 0.5 * 0.78)
        diff = paired_bootstrap(a, b, resamples=500, seed=trial)
        covered += diff.low <= true_delta <= diff.high
    assert covered >= 52  # 60 * 0.95 = 57; binomial slack


def test_scores_may_be_shares_of_repeats():
    a = np.array([1.0, 2 / 3, 1 / 3, 0.0])
    diff = paired_bootstrap(a, np.zeros(4), resamples=200)
    assert diff.delta == pytest.approx(0.5)
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros(3), np.zeros((3, 2)))
