"""`Findings`: what a finished run's report page and model card show, gathered once by
rnnflow/insight/report.py and handed to both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Findings:
    params: dict[str, Any]  # the run's settings as dotted keys (Point.flat())
    # Every final metric, the insight's own included; val_loss and val_accuracy only where the
    # model is not the last epoch's (early stopping): else their series' last epochs are.
    metrics: dict[str, float]
    history: dict[str, list[float]]  # per-epoch series from epoch 1
    split_sizes: dict[str, int]  # reviews per split
    mistakes: pd.DataFrame  # the confident test mistakes, traced (report.trace_mistakes)
    failures: pd.DataFrame  # the behavioural-check cases that failed
    mistake_explanations: list = field(default_factory=list)  # explain.Explanation per mistake
    sentences: list = field(default_factory=list)  # explain.Explanation per evaluate.sentences
    # With k > 2 classes: their names, the per-class table of each split (class, precision,
    # recall, f1, support) and the test split's most confused pairs (true, predicted, n, share).
    classes: list[str] | None = None
    per_class: dict[str, pd.DataFrame] = field(default_factory=dict)
    confused: pd.DataFrame | None = None
    # The name of every label (label i is names[i]): the k classes, or the two of a binary
    # model (neg/pos for sentiment; class 1 is the one whose probability the model outputs).
    names: list[str] = field(default_factory=lambda: ["neg", "pos"])
    # Why a part of the report is missing, in words: `sentences` and `checks` where the
    # built-in ones were skipped.
    notes: dict[str, str] = field(default_factory=dict)
    # The result beside the baselines in one line ('' without baselines), and why the model
    # learned nothing (empty: it learned something): the documents' banner.
    versus: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def sentiment(self) -> bool:
        """Binary sentiment, neg/pos: the labels the built-in sentences and checks are for."""
        return self.classes is None and list(self.names) == ["neg", "pos"]

    @property
    def finals(self) -> dict[str, float]:
        """The final metrics: the last epoch of every per-epoch series, unless the metrics
        hold the model's own value."""
        return {**{k: v[-1] for k, v in self.history.items() if v}, **self.metrics}
