"""A plan's results table: one row per point, the mean and spread of its repeats, and how it
compares with the best point on the shared test reviews. Computed without MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rnnflow.comparisons.stats import correct, mcnemar_exact, paired_bootstrap

LEVEL = 0.95


@dataclass(frozen=True)
class PointResult:
    """One point of a plan: its varied settings, the rows of its repeats (each with run_id,
    val_accuracy, test_accuracy, duration_seconds, reused) and their test predictions."""

    settings: dict[str, Any]
    runs: list[dict[str, Any]]
    predictions: list[pd.DataFrame]  # id, label, probability; one per repeat
    group_id: str | None = None  # the run grouping the repeats, if there are several

    @property
    def run_id(self) -> str:
        return self.group_id or self.runs[0]["run_id"]

    def mean(self, metric: str) -> float:
        return float(np.mean([r[metric] for r in self.runs]))

    def std(self, metric: str) -> float:
        """Sample standard deviation over repeats; 0 for one run."""
        values = [r[metric] for r in self.runs]
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def scores(self) -> np.ndarray:
        """Per test review (sorted by id), the share of repeats that classified it right."""
        right = []
        for frame in self.predictions:
            frame = frame.sort_values("id", kind="stable")
            right.append(correct(frame).astype(float))
        return np.mean(right, axis=0)

    def mean_of(self, metric: str) -> float:
        """The mean over the repeats that logged `metric` (a run logged before it existed, or
        without baselines, did not); NaN where none did."""
        values = [r[metric] for r in self.runs if r.get(metric) is not None]
        return float(np.mean(values)) if values else float("nan")

    def warning(self) -> str:
        """'learned nothing' where a run of the point learned nothing (`learned_nothing` 1),
        with how many where only some of its repeats did; '' otherwise."""
        flagged = sum(bool(r.get("learned_nothing")) for r in self.runs)
        if not flagged:
            return ""
        return "learned nothing" + ("" if flagged == len(self.runs)
                                    else f" ({flagged} of {len(self.runs)} repeats)")

    def summary_metrics(self) -> dict[str, float]:
        """What a point's group run logs: mean and std of each accuracy over the repeats."""
        return {f"{m}_{agg}": getattr(self, agg)(m) for m in ("val_accuracy", "test_accuracy")
                for agg in ("mean", "std")}


def best_index(points: list[PointResult]) -> int:
    """The best point: the highest mean val_accuracy (the test split is only read)."""
    return int(np.argmax([p.mean("val_accuracy") for p in points]))


def results_table(points: list[PointResult]) -> pd.DataFrame:
    """One row per point: its settings, val/test accuracy (mean and std over repeats), its
    difference to the best baseline (`test_delta_vs_baseline`, mean over repeats; NaN without
    baselines) and `warning` ("learned nothing" where any of its runs did, with how many of
    its repeats), and the paired comparison of its test predictions with the best point's."""
    best = best_index(points)
    best_scores = points[best].scores()
    records = []
    for i, point in enumerate(points):
        row = {**point.settings,
               "val_accuracy": point.mean("val_accuracy"),
               "val_accuracy_std": point.std("val_accuracy"),
               "test_accuracy": point.mean("test_accuracy"),
               "test_accuracy_std": point.std("test_accuracy"),
               "test_delta_vs_baseline": point.mean_of("test_delta_vs_baseline"),
               "warning": point.warning(),
               "repeats": len(point.runs),
               "reused": sum(bool(r.get("reused")) for r in point.runs),
               "duration_seconds": round(sum(r["duration_seconds"] for r in point.runs), 1)}
        if i == best:
            row.update(test_delta_vs_best=0.0, delta_low=0.0, delta_high=0.0,
                       mcnemar_p=float("nan"), vs_best="best")
        else:
            scores = point.scores()
            diff = paired_bootstrap(scores, best_scores, level=LEVEL)
            single = len(point.runs) == 1 and len(points[best].runs) == 1
            row.update(test_delta_vs_best=diff.delta, delta_low=diff.low, delta_high=diff.high,
                       mcnemar_p=mcnemar_exact(scores > 0.5, best_scores > 0.5) if single
                       else float("nan"),
                       vs_best=_verdict(diff.delta, diff.distinguishable))
        row["run_id"] = point.run_id
        records.append(row)
    return pd.DataFrame.from_records(records)


def _verdict(delta: float, distinguishable: bool) -> str:
    pct = f"{LEVEL:.0%}"
    if not distinguishable:
        return f"not distinguishable from the best at {pct}"
    return f"{'better' if delta > 0 else 'worse'} than the best at {pct}"


def plot_test_accuracy(table: pd.DataFrame, labels: list[str]):
    """Test accuracy per point (labelled in table order) with an error bar of one std over
    repeats."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(table) + 2), 3.5))
    colors = ["tab:green" if v == "best" else "tab:gray" if v.startswith("not") else
              "tab:red" for v in table.vs_best]
    ax.bar(range(len(table)), table.test_accuracy, yerr=table.test_accuracy_std, capsize=4,
           color=colors)
    ax.set_xticks(range(len(table)), labels, rotation=30, ha="right", fontsize=8)
    low = float((table.test_accuracy - table.test_accuracy_std).min())
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, float(table.test_accuracy.max()) + 0.05))
    ax.set_ylabel("test accuracy (mean ± std)")
    ax.set_title("green: best by val_accuracy; gray: not distinguishable from it; red: differs",
                 fontsize=8)
    fig.tight_layout()
    return fig
