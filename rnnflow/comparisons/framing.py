"""A trained model's result framed against the baselines fitted on the same splits
(rnnflow/network/baselines.py), and the rule that says a model learned nothing. Computed
without MLflow or the network: the caller hands each baseline in as a `Reference` of plain
values and predictions tables.

The line reads "test accuracy 0.747; bag-of-words 0.903: -15.6 points [-17.0, -14.2];
majority 0.500": the best baseline (by val accuracy, as points are picked: the test split is
only read) with the paired difference of test accuracy, model minus baseline, in percentage
points and its 95% bootstrap interval over test reviews; the others with their test accuracy.

A model learned nothing when any of these holds (`learned_nothing`):
- one class gets at least `ONE_CLASS_SHARE` of its val or test predictions while the labels
  give that class less: a collapsed model, whatever its accuracy;
- it is not better than the majority baseline on the test reviews at 95% (paired bootstrap):
  its accuracy could be the majority class's share, or is below it;
- its training loss never fell below the first epoch's (two epochs or more).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rnnflow.comparisons.stats import Difference, correct, paired_bootstrap, predicted

LEVEL = 0.95
# A model that collapsed onto one class predicts it for every review but a handful; one that
# learned something spreads its predictions at least roughly like the labels. 95% leaves room
# for the few reviews noise pushes over the threshold in a collapsed model (10 of a 206-review
# test split), and stays clear of the skew an honest model shows on moderately imbalanced
# labels. Where the labels themselves give one class 95% or more, this rule says nothing: the
# comparison with the majority baseline speaks for that case.
ONE_CLASS_SHARE = 0.95
MAJORITY = "majority"


@dataclass(frozen=True)
class Reference:
    """A baseline as the framing needs it: its name (`majority`, `bag_of_words`), how a user
    reads it, its accuracies and its test predictions table (id, label, probability or
    predicted)."""

    name: str
    title: str
    val_accuracy: float
    test_accuracy: float
    test_predictions: pd.DataFrame


@dataclass(frozen=True)
class Framing:
    """A model's test accuracy beside the baselines, and why it learned nothing (empty: it
    learned something)."""

    test_accuracy: float
    references: list[Reference]
    best: Reference | None  # the baseline with the best val accuracy
    difference: Difference | None  # model minus `best`, test accuracy, paired
    reasons: list[str]

    @property
    def learned_nothing(self) -> bool:
        return bool(self.reasons)

    def versus(self) -> str:
        """The baselines' part of the line: '' without baselines."""
        if self.best is None or self.difference is None:
            return ""
        d = self.difference
        parts = [f"{self.best.title} {self.best.test_accuracy:.3f}: {100 * d.delta:+.1f} points "
                 f"[{100 * d.low:+.1f}, {100 * d.high:+.1f}]"]
        parts += [f"{r.title} {r.test_accuracy:.3f}" for r in self.references if r is not self.best]
        return "; ".join(parts)

    def line(self, with_reasons: bool = True) -> str:
        """'test accuracy 0.747; bag-of-words 0.903: -15.6 points [-17.0, -14.2]; majority
        0.500', and (`with_reasons`) what the model learned nothing by, if it did."""
        text = result_line(self.test_accuracy, self.versus())
        if with_reasons and self.reasons:
            text += f" - LEARNED NOTHING: {'; '.join(self.reasons)}"
        return text

    def metrics(self) -> dict[str, float]:
        """What every point run logs: the difference to the best baseline (with its interval)
        where there is one, and `learned_nothing` as 1 or 0 (sortable in `mlflow ui`)."""
        out = {"learned_nothing": float(self.learned_nothing)}
        if self.difference is not None:
            out.update(test_delta_vs_baseline=self.difference.delta,
                       test_delta_vs_baseline_low=self.difference.low,
                       test_delta_vs_baseline_high=self.difference.high)
        return out


def result_line(test_accuracy: float, versus: str) -> str:
    """'test accuracy 0.747' and the baselines' part (`Framing.versus`, or `versus_of` a row),
    where there is one: the one form of a result beside the baselines, wherever it is shown."""
    return "; ".join(p for p in (f"test accuracy {test_accuracy:.3f}", versus) if p)


def versus_of(row: Mapping[str, Any]) -> str:
    """The baselines' part of a result row (a point's or a trial's run): the framing of a run
    trained now (`vs_baselines`), the logged difference of a reused one (its baselines'
    scores are in their own runs), '' without baselines."""
    if row.get("vs_baselines"):
        return str(row["vs_baselines"])
    delta = row.get("test_delta_vs_baseline")
    if delta is not None and not math.isnan(delta):
        return f"{100 * delta:+.1f} points vs the best baseline"
    return ""


def paired_scores(model: pd.DataFrame, reference: pd.DataFrame
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per test review both score, matched by id: whether the model and the reference got it
    right."""
    both = model[["id"]].assign(a=correct(model)).merge(
        reference[["id"]].assign(b=correct(reference)), on="id", how="inner", validate="1:1")
    return both.a.to_numpy(float), both.b.to_numpy(float)


def one_class_reason(frame: pd.DataFrame, split: str, names: list[str] | None = None
                     ) -> str | None:
    """Why the split's predictions count as one class (see ONE_CLASS_SHARE), or None."""
    if not len(frame):
        return None
    given = predicted(frame)
    values, counts = np.unique(given, return_counts=True)
    top = int(values[counts.argmax()])
    share = counts.max() / len(given)
    label_share = float((frame.label.to_numpy().astype(int) == top).mean())
    if share < ONE_CLASS_SHARE or label_share >= ONE_CLASS_SHARE:
        return None
    name = names[top] if names and top < len(names) else str(top)
    return (f"predicts {name} for {share:.0%} of the {split} reviews "
            f"(the labels give it {label_share:.0%})")


def learned_nothing(predictions: dict[str, pd.DataFrame], references: list[Reference],
                    loss: list[float] | None = None, names: list[str] | None = None
                    ) -> list[str]:
    """The reasons a model learned nothing (see the module's docstring); empty if none holds.
    `predictions`: its val and test predictions tables; `names`: the class names."""
    reasons = [r for split in ("val", "test") if split in predictions
               and (r := one_class_reason(predictions[split], split, names))]
    majority = next((r for r in references if r.name == MAJORITY), None)
    if majority is not None and "test" in predictions:
        diff = paired_bootstrap(*paired_scores(predictions["test"], majority.test_predictions),
                                level=LEVEL)
        if not diff.low > 0:
            reasons.append(f"not better than the majority class on the test reviews at "
                           f"{LEVEL:.0%} ({100 * diff.delta:+.1f} points "
                           f"[{100 * diff.low:+.1f}, {100 * diff.high:+.1f}])")
    if loss and len(loss) > 1 and min(loss[1:]) >= loss[0]:
        reasons.append(f"its training loss never fell below the first epoch's ({loss[0]:.4f})")
    return reasons


def frame_result(predictions: dict[str, pd.DataFrame], test_accuracy: float,
                 references: list[Reference], loss: list[float] | None = None,
                 names: list[str] | None = None) -> Framing:
    """The model's result beside `references` (in the order given), with the learned-nothing
    rule applied."""
    best = max(references, key=lambda r: r.val_accuracy, default=None)  # a tie: the first
    difference = None
    if best is not None:
        difference = paired_bootstrap(*paired_scores(predictions["test"],
                                                     best.test_predictions), level=LEVEL)
    return Framing(test_accuracy, list(references), best, difference,
                   learned_nothing(predictions, references, loss, names))
