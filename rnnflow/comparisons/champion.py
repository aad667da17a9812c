"""Whether a challenger model replaces the champion: computed from the two runs' test
predictions, without MLflow (flows/champion.py applies it to the registry).

The rule: with no champion, the challenger becomes it. Otherwise both must have scored the
same test reviews (same ids, same labels); the challenger is promoted only if its test accuracy
on them is higher by at least `min_delta` AND the paired bootstrap's 95% interval of the
difference lies above zero (rnnflow/comparisons/stats.py): a gain within the noise of the
test split does not replace a champion. McNemar's exact p is reported beside it.

Models scored on different test reviews are not compared, and the champion is kept: two
accuracies on different reviews say nothing about which model is better (an easier or a
smaller test split wins by itself), and the registry's `champion` is what gets served, so it
changes only on evidence. Every decision that keeps a champion names the command that promotes
the challenger by hand (`rnnflow promote`), for when the split was changed on purpose.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnnflow.comparisons.stats import correct, mcnemar_exact, paired_bootstrap
from rnnflow.comparisons.stats import predicted as predicted_classes

LEVEL = 0.95
TEST = "paired_bootstrap"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_accuracy: float
    champion_accuracy: float | None = None
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    mcnemar_p: float | None = None
    test: str = "none"

    def tags(self) -> dict[str, str]:
        """The decision as model-version tags (strings; absent figures left out)."""
        out = {"promoted": str(self.promote).lower(), "decision_reason": self.reason,
               "decision_test": self.test,
               "challenger_test_accuracy": f"{self.challenger_accuracy:.6f}"}
        for key, value in (("champion_test_accuracy", self.champion_accuracy),
                           ("test_delta", self.delta), ("delta_low", self.low),
                           ("delta_high", self.high), ("mcnemar_p", self.mcnemar_p)):
            if value is not None:
                out[key] = f"{value:.6f}"
        return out


@dataclass(frozen=True)
class Registered:
    """A run's model registered as the challenger, and what was decided about it."""

    name: str
    version: str
    run_id: str
    decision: Decision
    champion_version: str | None  # the champion before this decision

    def describe(self) -> str:
        """One line; where the champion is kept, it ends with the command that would make the
        challenger the champion anyway."""
        before = f"champion v{self.champion_version}" if self.champion_version else "no champion"
        verdict = "promoted to champion" if self.decision.promote else "not promoted"
        line = (f"model {self.name} v{self.version} (run {self.run_id}) is the challenger, "
                f"{verdict} ({before}): {self.decision.reason}")
        if not self.decision.promote and self.champion_version not in (None, self.version):
            line += f"; to make it the champion: {promote_command(self.name, self.version)}"
        return line


def promote_command(name: str, version: str) -> str:
    """The command that makes version `version` of the registered model `name` the champion."""
    return f"rnnflow promote --model {shlex.quote(name)} --version {version}"


def _different_reviews(ids_a: np.ndarray, ids_b: np.ndarray, figure: str, a: float,
                       b: float) -> str:
    shared = len(np.intersect1d(ids_a, ids_b))
    return (f"not scored on the same test reviews as the champion ({figure} {a:.4f} on "
            f"{len(ids_a):,} reviews, the champion's {b:.4f} on {len(ids_b):,}; {shared:,} "
            "review ids shared): not compared, champion kept")


def _right(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = frame.sort_values("id", kind="stable")
    right = correct(frame)
    return frame.id.to_numpy(), frame.label.to_numpy(), right


def accuracy(predictions: pd.DataFrame) -> float:
    return float(_right(predictions)[2].mean())


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over the classes in `labels` or `predicted` of each class's F1.

    What sklearn's `f1_score(average="macro", zero_division=0)` gives; written out because the
    gate calls it for each of its 2,000 resamples, where sklearn's input checks dominate."""
    f1 = []
    for c in np.union1d(labels, predicted):
        tp = np.sum((predicted == c) & (labels == c))
        denominator = np.sum(predicted == c) + np.sum(labels == c)
        f1.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1)) if f1 else 0.0


def _predicted(frame: pd.DataFrame) -> np.ndarray:
    """Each review's class, in the id order `_right` reads the reviews in."""
    return predicted_classes(frame.sort_values("id", kind="stable"))


def _decide_macro_f1(challenger, champion, min_delta, resamples=2000, seed=0) -> Decision:
    """The gate on macro F1: its difference on the shared test reviews, with a percentile
    interval from resampling the reviews (both models on the same resamples)."""
    ids_a, labels, right_a = _right(challenger)
    pred_a = _predicted(challenger)
    f1_a = macro_f1(labels, pred_a)
    if champion is None:
        return Decision(True, "no champion yet", f1_a)
    ids_b, labels_b, right_b = _right(champion)
    pred_b = _predicted(champion)
    f1_b = macro_f1(labels_b, pred_b)
    if len(ids_a) != len(ids_b) or not (np.array_equal(ids_a, ids_b)
                                        and np.array_equal(labels, labels_b)):
        return Decision(False, _different_reviews(ids_a, ids_b, "test macro F1", f1_a, f1_b),
                        f1_a, f1_b, f1_a - f1_b)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for i in range(resamples):
        at = rng.integers(0, len(labels), len(labels))
        draws[i] = macro_f1(labels[at], pred_a[at]) - macro_f1(labels[at], pred_b[at])
    tail = (1 - LEVEL) / 2
    low, high = (float(v) for v in np.quantile(draws, [tail, 1 - tail]))
    delta = f1_a - f1_b
    figures = dict(challenger_accuracy=f1_a, champion_accuracy=f1_b, delta=delta, low=low,
                   high=high, mcnemar_p=mcnemar_exact(right_a, right_b), test=TEST)
    span = f"{delta:+.4f} [{low:+.4f}, {high:+.4f}] at {LEVEL:.0%}"
    if delta < min_delta:
        return Decision(False, f"test macro F1 {span}: below min_delta {min_delta:g}",
                        **figures)
    if low <= 0:
        return Decision(False, f"test macro F1 {span}: not better beyond the noise of the "
                        "test split", **figures)
    return Decision(True, f"test macro F1 {span}: better", **figures)


def decide(challenger: pd.DataFrame, champion: pd.DataFrame | None,
           min_delta: float = 0.0, metric: str = "accuracy") -> Decision:
    """Promote the challenger? From test predictions (id, label, probability) of each. With
    `metric` macro_f1 the figures (challenger_accuracy, ...) are macro F1."""
    if metric == "macro_f1":
        return _decide_macro_f1(challenger, champion, min_delta)
    ids_a, labels_a, right_a = _right(challenger)
    acc_a = float(right_a.mean())
    if champion is None:
        return Decision(True, "no champion yet", acc_a)
    ids_b, labels_b, right_b = _right(champion)
    acc_b = float(right_b.mean())
    if len(ids_a) != len(ids_b) or not (np.array_equal(ids_a, ids_b)
                                        and np.array_equal(labels_a, labels_b)):
        return Decision(False, _different_reviews(ids_a, ids_b, "test accuracy", acc_a, acc_b),
                        acc_a, acc_b, acc_a - acc_b)
    diff = paired_bootstrap(right_a.astype(float), right_b.astype(float), level=LEVEL)
    p = mcnemar_exact(right_a, right_b)
    figures = dict(challenger_accuracy=acc_a, champion_accuracy=acc_b, delta=diff.delta,
                   low=diff.low, high=diff.high, mcnemar_p=p, test=TEST)
    span = f"{diff.delta:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}] at {LEVEL:.0%}"
    if diff.delta < min_delta:
        return Decision(False, f"test accuracy {span}: below min_delta {min_delta:g}",
                        **figures)
    if diff.low <= 0:
        return Decision(False, f"test accuracy {span}: not better beyond the noise of the "
                        "test split", **figures)
    return Decision(True, f"test accuracy {span}: better", **figures)
