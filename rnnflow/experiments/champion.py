"""Whether a challenger model replaces the champion: computed from the two runs' test
predictions, without MLflow (flows/champion.py applies it to the registry).

The rule: with no champion, the challenger becomes it. Otherwise both must have scored the
same test reviews (same ids, same labels); the challenger is promoted only if its test accuracy
on them is higher by at least `min_delta` AND the paired bootstrap's 95% interval of the
difference lies above zero (rnnflow/experiments/stats.py): a gain within the noise of the
test split does not replace a champion. McNemar's exact p is reported beside it. Models scored
on different test reviews are not compared (a champion is kept until one beats it on the same
reviews); promote by hand with `mlflow` if the split was changed on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnnflow.experiments.stats import correct, mcnemar_exact, paired_bootstrap

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
        before = f"champion v{self.champion_version}" if self.champion_version else "no champion"
        verdict = "promoted to champion" if self.decision.promote else "not promoted"
        return (f"model {self.name} v{self.version} (run {self.run_id}) is the challenger, "
                f"{verdict} ({before}): {self.decision.reason}")


def _right(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = frame.sort_values("id", kind="stable")
    right = correct(frame)
    return frame.id.to_numpy(), frame.label.to_numpy(), right


def accuracy(predictions: pd.DataFrame) -> float:
    return float(_right(predictions)[2].mean())


def decide(challenger: pd.DataFrame, champion: pd.DataFrame | None,
           min_delta: float = 0.0) -> Decision:
    """Promote the challenger? From test predictions (id, label, probability) of each."""
    ids_a, labels_a, right_a = _right(challenger)
    acc_a = float(right_a.mean())
    if champion is None:
        return Decision(True, "no champion yet", acc_a)
    ids_b, labels_b, right_b = _right(champion)
    acc_b = float(right_b.mean())
    if len(ids_a) != len(ids_b) or not (np.array_equal(ids_a, ids_b)
                                        and np.array_equal(labels_a, labels_b)):
        return Decision(False, "not scored on the same test reviews as the champion: not "
                        "compared, champion kept", acc_a, acc_b, acc_a - acc_b)
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
