"""What a finished run reports, computed without MLflow: final metrics, figures and tables.

`summarize` turns what training and evaluation measured into a `RunReport`; the tracking
package logs it in one call (`tracking.log_report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rnnflow import plots
from rnnflow.config import Experiment
from rnnflow.evaluate import Evaluation, confident_mistakes
from rnnflow.predict import TextModel
from rnnflow.train import Fit


@dataclass(frozen=True)
class RunReport:
    # Logged once, at the end. A final metric that is also a per-epoch series (val_loss,
    # val_accuracy) is left out: the series' last epoch already holds it, and a step-0 value
    # would break the learning curve in `mlflow ui`.
    metrics: dict[str, float]
    figures: dict[str, Any]  # plots/<name>: matplotlib figures
    frames: dict[str, pd.DataFrame]  # artifact name (.csv or .parquet): table
    texts: dict[str, str] = field(default_factory=dict)  # artifact name: text (report.html, ...)


def summarize(*, model, evaluation: Evaluation, history: dict[str, list[float]], fit: Fit,
              vector_stats: dict[str, float], seconds: dict[str, float],
              preprocess_seconds: float, reviews_parquet: Path, mistakes: int,
              text_model: TextModel, sentences: list[str],
              experiment: Experiment | None = None) -> RunReport:
    """`history` is the whole curve from epoch 1 (a continued run's earlier epochs included);
    `seconds` the wall seconds per step, logged as `seconds_<step>`. With the run's
    `experiment`, also what the network saw and why (rnnflow.insight): the confident mistakes
    traced, the behavioural checks, report.html and model_card.md."""
    metrics = {k: v for k, v in evaluation.metrics.items() if k not in history}
    metrics.update({
        "train_seconds": seconds["train"],
        "preprocess_seconds": preprocess_seconds,
        "oov_rate": vector_stats["oov_tokens"] / max(1.0, vector_stats["tokens"]),
        "empty_docs": vector_stats["empty_docs"],
        "trainable_params": float(sum(int(w.numpy().size) for w in model.trainable_weights)),
        **{f"seconds_{step}": v for step, v in seconds.items()},
        "fit_seconds": fit.fit_seconds,
        "train_samples_per_s": fit.train_samples_per_s,
        # Bucketed batches (pad.bucket, or maxlen null): the time steps a batch really had.
        "mean_batch_length": fit.mean_batch_length,
        "padding_step_saving": fit.padding_step_saving,
    })
    figures = {
        "learning_curves.png": plots.plot_learning_curves(history),
        "confusion_matrix.png": plots.plot_confusion(evaluation.confusion),
        "roc_pr_curves.png": plots.plot_roc_pr(evaluation.predictions),
    }
    test = evaluation.predictions["test"]
    frames = {
        "test_predictions.parquet": test,
        "confident_mistakes.csv": confident_mistakes(test, reviews_parquet, mistakes),
        "examples.csv": pd.concat([pd.DataFrame({"text": sentences}),
                                   text_model.predict(sentences)], axis=1),
    }
    if experiment is None:
        return RunReport(metrics, figures, frames)
    from rnnflow.insight import analyse

    insight = analyse(text_model=text_model, mistakes=frames["confident_mistakes.csv"],
                      reviews_parquet=reviews_parquet, sentences=sentences,
                      checks=experiment.evaluate.checks, params=experiment.flat(),
                      metrics=metrics, history=history, figures=figures)
    return RunReport({**metrics, **insight.metrics}, figures, {**frames, **insight.frames},
                     insight.texts)
