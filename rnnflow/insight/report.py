"""What a finished run reports, computed without MLflow: final metrics, figures, tables, and
what the network saw and why (the confident mistakes traced and attributed, the behavioural
checks), with `report.html` and `model_card.md`.

`summarize` turns a `FinishedRun` into a `RunReport`; the flow logs it in one call
(`tracking.log_report`).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from rnnflow.config import MOVIE_SENTENCES, Point
from rnnflow.data.reviews import texts_by_id
from rnnflow.insight import explain as ex
from rnnflow.insight import plots
from rnnflow.insight.cases import load_cases
from rnnflow.insight.checks import run_checks
from rnnflow.insight.findings import Findings
from rnnflow.insight.model_card import model_card
from rnnflow.insight.render import report_page
from rnnflow.network.evaluate import Evaluation, confident_mistakes
from rnnflow.network.predict import TextModel
from rnnflow.network.train import Fit

log = logging.getLogger(__name__)

# Strongest sentiment words per review checked for being lost (see rnnflow.insight.explain).
TOP_WORDS = 3


@dataclass(frozen=True)
class FinishedRun:
    """One trained and evaluated point: everything its report is made of."""

    point: Point
    model: Any  # the trained keras.Model
    text_model: TextModel  # the same network with its tokenizer and vocabulary
    fit: Fit
    evaluation: Evaluation
    history: dict[str, list[float]]  # the whole curve from epoch 1 (a continued run's too)
    vector_stats: dict[str, float]  # tokens, oov_tokens, empty_docs
    seconds: dict[str, float]  # wall seconds per step, logged as `seconds_<step>`
    preprocess_seconds: float
    reviews_parquet: Path  # the reviews stage's file: texts of the mistakes, split sizes
    # The class names where they are not the two sentiment classes (label i is classes[i]);
    # None: binary sentiment, where the built-in sentiment checks apply.
    classes: list[str] | None = None
    # The result beside the baselines, in words ("test accuracy 0.747; bag-of-words 0.903:
    # -15.6 points [...]; majority 0.500"; '' without baselines), and why the model learned
    # nothing (rnnflow/comparisons/framing.py): a banner at the top of both documents.
    versus: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunReport:
    # Logged once, at the end. A final metric that is also a per-epoch series (val_loss,
    # val_accuracy) is left out: the series' last epoch already holds it, and a step-0 value
    # would break the learning curve in `mlflow ui`.
    metrics: dict[str, float]
    figures: dict[str, Any]  # plots/<name>: matplotlib figures
    frames: dict[str, pd.DataFrame]  # artifact name (.csv or .parquet): table
    texts: dict[str, str] = field(default_factory=dict)  # artifact name: text (report.html, ...)
    # Unless the model holds an earlier epoch's weights (early stopping): then its own scores
    # of those series, to be logged one step after the last epoch, where `mlflow ui` takes a
    # metric's final value from (as MLflow's Keras autologging does). Empty otherwise.
    restored: dict[str, float] = field(default_factory=dict)
    restored_step: int | None = None


def summarize(run: FinishedRun) -> RunReport:
    """The run's report: metrics, figures and tables, then the insight (mistakes traced,
    checks) and the two documents made from it."""
    metrics = _metrics(run)
    evaluation = run.evaluation
    if evaluation.multiclass:
        figures = {
            "learning_curves.png": plots.plot_learning_curves(run.history),
            "confusion_matrix.png": plots.plot_confusion(evaluation.confusion,
                                                         evaluation.classes),
        }
    else:
        figures = {
            "learning_curves.png": plots.plot_learning_curves(run.history),
            "confusion_matrix.png": plots.plot_confusion(evaluation.confusion),
            "roc_pr_curves.png": plots.plot_roc_pr(evaluation.predictions),
        }
    test = run.evaluation.predictions["test"]
    mistakes = confident_mistakes(test, run.reviews_parquet, run.point.evaluate.mistakes)
    mistakes, mistake_explanations = trace_mistakes(run.text_model, mistakes,
                                                    run.reviews_parquet)
    insight: dict[str, float] = {}
    if len(mistakes):
        insight["mistakes_lost_sentiment_share"] = float(mistakes.lost_sentiment.mean())
    sentences, cases, notes = built_in_examples(run)
    check_metrics, failures = run_checks(run.text_model, cases, run.classes)
    insight.update(check_metrics)
    # The series' final values where the model is not the last epoch's (early stopping).
    restored = ({k: v for k, v in run.evaluation.metrics.items() if k in run.history}
                if run.fit.restored_epoch else {})
    split = pq.read_table(run.reviews_parquet, columns=["split"])["split"].to_pandas()
    findings = Findings(
        params=run.point.flat(), metrics={**metrics, **insight, **restored},
        history=run.history,
        split_sizes={s: int((split == s).sum()) for s in ("train", "val", "test")},
        mistakes=mistakes, failures=failures, mistake_explanations=mistake_explanations,
        sentences=ex.explain(run.text_model, sentences, unrolled=True,
                             loss_steps=run.point.train.loss_steps) if sentences else [],
        names=run.text_model.class_names, notes=notes, versus=run.versus,
        warnings=list(run.warnings),
        **(dict(classes=evaluation.classes, per_class=evaluation.per_class or {},
                confused=most_confused(evaluation.confusion["test"], evaluation.classes))
           if evaluation.multiclass else {}))
    # Rendered to PNG here, before the flow logs the figures and closes them.
    images = {name: figure_png(fig) for name, fig in figures.items()}
    frames = {
        "test_predictions.parquet": test,
        "confident_mistakes.csv": mistakes,
        "checks_failures.csv": failures,
    }
    if sentences:  # none where the built-in ones were skipped (or none were given)
        frames["examples.csv"] = pd.concat([pd.DataFrame({"text": sentences}),
                                            run.text_model.predict(sentences)], axis=1)
    if evaluation.multiclass:
        frames["per_class.csv"] = evaluation.per_class_frame()
    return RunReport({**metrics, **insight}, figures, frames,
                     {"report.html": report_page(findings, images),
                      "model_card.md": model_card(findings)},
                     restored, run.fit.epochs_done + 1 if restored else None)


def built_in_sentences_fit(point: Point, classes: list[str] | None) -> bool:
    """Whether the built-in example sentences (English movie reviews, two each way) say
    something about this run's model: its labels are the sentiment pair (`classes` None: neg/pos,
    which 0/1, true/false and positive/negative labels of a table also become), or it reads the
    aclImdb reviews (star ratings as classes among them). Other labels (topics, emotions,
    another language) would get English movie-review sentences scored for nothing."""
    return classes is None or point.dataset.source == "aclimdb"


def built_in_examples(run: FinishedRun) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """The example sentences and behavioural-check cases the run scores, and why a built-in
    set was skipped (`sentences`, `checks`). What the params file gives is always scored; the
    built-in sentences only where they fit (`built_in_sentences_fit`), the built-in checks
    (sentiment cases, labels 0/1 and "not" lowering the score) only for neg/pos labels. A skip
    is logged once, with how to give one's own."""
    evaluate = run.point.evaluate
    sentences = list(evaluate.sentences)
    cases = load_cases(evaluate.checks)
    skipped = []
    if sentences == list(MOVIE_SENTENCES) and not built_in_sentences_fit(run.point, run.classes):
        sentences, skipped = [], ["sentences"]
    if cases and run.classes is not None and evaluate.checks == "default":
        cases, skipped = [], [*skipped, "checks"]
    if not skipped:
        return sentences, cases, {}
    classes = ", ".join(run.classes or [])
    how = {"sentences": "evaluate.sentences: [\"a text of your own\", ...] (scored into "
                        "examples.csv and report.html)",
           "checks": "evaluate.checks: a YAML file or a list of mft/inv/dir cases whose "
                     "labels name your classes (the built-in set, "
                     "rnnflow/insight/checks.yaml, shows the form)"}
    what = {"sentences": "the built-in example sentences (English movie reviews)",
            "checks": "the built-in behavioural checks (neg/pos sentiment cases)"}
    reason = (f"{' and '.join(what[k] for k in skipped)} skipped: they are written for "
              f"sentiment of movie reviews, and this run's classes are {classes}; give your "
              f"own in the params file: {'; '.join(how[k] for k in skipped)}")
    log.info("%s", reason)
    return sentences, cases, dict.fromkeys(skipped, reason)


def most_confused(confusion, classes: list[str], n: int = 5) -> pd.DataFrame:
    """The `n` (true, predicted) pairs of different classes with the most reviews: n, and
    their share of the true class."""
    rows = [(classes[i], classes[j], int(confusion[i, j]),
             float(confusion[i, j] / max(1, confusion[i].sum())))
            for i in range(len(classes)) for j in range(len(classes))
            if i != j and confusion[i, j] > 0]
    frame = pd.DataFrame(rows, columns=["true", "predicted", "n", "share"])
    return frame.sort_values(["n", "share"], ascending=False, kind="stable").head(n) \
        .reset_index(drop=True)


def _metrics(run: FinishedRun) -> dict[str, float]:
    fit, stats = run.fit, run.vector_stats
    metrics = {k: v for k, v in run.evaluation.metrics.items() if k not in run.history}
    metrics.update({
        "train_seconds": run.seconds["train"],
        "preprocess_seconds": run.preprocess_seconds,
        "oov_rate": stats["oov_tokens"] / max(1.0, stats["tokens"]),
        "empty_docs": stats["empty_docs"],
        "trainable_params": float(sum(int(w.numpy().size)
                                      for w in run.model.trainable_weights)),
        **{f"seconds_{step}": v for step, v in run.seconds.items()},
        "fit_seconds": fit.fit_seconds,
        "train_samples_per_s": fit.train_samples_per_s,
        # Bucketed batches (pad.bucket, or maxlen null): the time steps a batch really had.
        "mean_batch_length": fit.mean_batch_length,
        "padding_step_saving": fit.padding_step_saving,
    })
    if fit.restored_epoch:  # the epoch the logged model is, and the last one trained
        metrics.update(restored_epoch=fit.restored_epoch, stopped_epoch=fit.epochs_done)
    return metrics


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def trace_mistakes(text_model: TextModel, mistakes: pd.DataFrame, reviews_parquet: Path
                   ) -> tuple[pd.DataFrame, list[ex.Explanation]]:
    """`mistakes` (confident_mistakes) with tokens, oov_tokens, truncated_tokens,
    strongest_words, lost_words and lost_sentiment; and each review's explanation (its whole
    text, not the excerpt)."""
    if mistakes.empty:
        cols = ["tokens", "oov_tokens", "truncated_tokens", "strongest_words", "lost_words",
                "lost_sentiment"]
        return mistakes.assign(**{c: pd.Series(dtype=object) for c in cols}), []
    full = texts_by_id(reviews_parquet, mistakes.id.tolist())
    explanations = ex.explain(text_model, [full[i] for i in mistakes.id])
    polarity = ex.word_polarity(text_model, [t for e in explanations for t in e.path.tokens])
    lost = pd.DataFrame(ex.lost_sentiment([e.path for e in explanations], polarity, TOP_WORDS))
    text_at = mistakes.columns.get_loc("text")
    columns = [*mistakes.columns[:text_at], *lost.columns, *mistakes.columns[text_at:]]
    return pd.concat([mistakes.reset_index(drop=True), lost], axis=1)[columns], explanations
