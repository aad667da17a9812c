"""The chain's last step, as a Prefect task: what a trained and evaluated point logs to its
MLflow run (the active run of this thread, which flows/point_run.py started).

- where it trained (the tags of `Fit`: device, recurrent kernel, precision);
- its result framed against the baselines fitted on its reviews, and whether it learned
  nothing (rnnflow/comparisons/framing.py): the line in the log, the metrics
  `test_delta_vs_baseline` and `learned_nothing`, the `rnnflow.warning` tag;
- the report (rnnflow/insight/report.py): final metrics, figures, tables, report.html and the
  model card;
- the Keras model as its stock twin: the same weights in stock Keras layers, which load
  without rnnflow;
- the raw-text model: the network with its tokenizer and vocabulary (rnnflow/network/predict.py),
  an MLflow model from code whose loader is rnnflow's public entry point.

Beside them, `log_baseline`: a fitted baseline (rnnflow/network/baselines.py) as a run of its
own, with the metric keys, tables and confusion matrix of a point's run.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import yaml
from prefect import task
from prefect.cache_policies import NONE

import rnnflow
from rnnflow import api, tracking
from rnnflow.comparisons.framing import Framing, Reference, frame_result
from rnnflow.config import Point
from rnnflow.data.embeddings import load_vocab
from rnnflow.data.reviews import read_labels
from rnnflow.data.storage import Stage
from rnnflow.insight import plots
from rnnflow.insight.report import FinishedRun, summarize
from rnnflow.memory import release_memory
from rnnflow.network import baselines, predict
from rnnflow.network.baselines import Baseline, fitted_baselines
from rnnflow.network.evaluate import Evaluation
from rnnflow.network.model import stock_twin
from rnnflow.network.train import Fit
from tasks.stages import STEPS, Stages
from tasks.timing import timed

log = logging.getLogger("rnnflow.flow")


def _log_results(point: Point, stages: Stages, model, fit: Fit, evaluation: Evaluation, *,
                 history: dict[str, list[float]], seconds: dict[str, float],
                 baselines: tuple[str, ...] = ()) -> dict[str, Any]:
    """The result framed against `baselines` (those fitted on its reviews), the report, the
    Keras model and the raw-text model. `history` is the whole learning curve from epoch 1 (a
    continued run's earlier epochs first); `seconds` the point's steps so far. Returns what
    the point's row adds: the framing's metrics, `vs_baselines` and `warning`."""
    framing = frame_against_baselines(stages, evaluation, history, baselines)
    log.info("logging the report and the models")
    tracking.set_tags(fit.tags)  # where it trained: device, kernel and precision
    text_model = text_model_of(point, stages, model, evaluation)
    report = summarize(FinishedRun(
        point=point, model=model, text_model=text_model, fit=fit, evaluation=evaluation,
        history=history, vector_stats=stages.vector_stats, seconds=dict(seconds),
        preprocess_seconds=preprocess_seconds(seconds),
        reviews_parquet=stages.reviews.file("reviews.parquet"),
        classes=None if stages.labels.sentiment else stages.labels.classes,
        versus=framing.line(with_reasons=False) if framing.best else "",
        warnings=framing.reasons))
    tracking.log_report(report.metrics, report.figures, report.frames, report.texts)
    if report.restored:  # early stopping: what `mlflow ui` shows is the logged model's score
        tracking.log_epoch(report.restored_step, report.restored)
    # Each model logged below is saved, and MLflow loads the text model back to check its
    # input example: the run's memory peak. Keras models hold reference cycles, so what the
    # report and the stock twin leave is freed by a collection first, not when they go.
    del report
    release_memory()
    tracking.log_keras_model(stock_twin(model, point.model))  # loads without rnnflow
    release_memory()
    _log_text_model(text_model)
    return {**framing.metrics(), "vs_baselines": framing.versus(), "warning": warning(framing)}


def frame_against_baselines(stages: Stages, evaluation: Evaluation,
                            history: dict[str, list[float]], names: tuple[str, ...]) -> Framing:
    """The result beside the baselines `names` fitted on the point's reviews, logged on the
    active run: the line in the log (a warning where it learned nothing), the metrics, and the
    `rnnflow.warning` tag where it learned nothing."""
    references = [Reference(b.name, b.title, b.evaluation.metrics["val_accuracy"],
                            b.evaluation.metrics["test_accuracy"], b.evaluation.predictions["test"])
                  for b in fitted_baselines(stages.reviews, names)]
    framing = frame_result(evaluation.predictions, evaluation.metrics["test_accuracy"],
                           references, history.get("loss"), stages.labels.classes)
    if framing.learned_nothing:
        log.warning("%s", framing.line())
        tracking.set_tags({tracking.WARNING_TAG: warning(framing)})
    else:
        log.info("%s", framing.line())
    tracking.log_metrics(framing.metrics())
    return framing


def warning(framing: Framing) -> str:
    """The run's warning in words: 'learned nothing: <why>', or ''."""
    return f"learned nothing: {'; '.join(framing.reasons)}" if framing.learned_nothing else ""


def text_model_of(point: Point, stages: Stages, model, evaluation: Evaluation
                  ) -> predict.TextModel:
    """The network with the tokenizer, vocabulary and padding it was trained with."""
    labels = stages.labels
    return predict.TextModel(
        model, load_vocab(stages.embeddings), point.tokenize, point.pad,
        classes=labels.classes if evaluation.multiclass else None,
        binary_names=labels.binary_names)


def _log_text_model(text_model: predict.TextModel) -> None:
    """Its files as the artifacts of a model from code; rnnflow's own copy travels with it."""
    with tempfile.TemporaryDirectory(prefix="rnnflow-text-model-") as tmp:
        tracking.log_text_model(predict.save_text_model(text_model, Path(tmp)), api.LOADER,
                                predict.outputs(text_model),
                                code_paths=[str(Path(rnnflow.__file__).parent)])


def preprocess_seconds(seconds: dict[str, float]) -> float:
    """The six preprocessing steps' seconds together."""
    return sum(seconds.get(step, 0.0) for step in STEPS)


log_results = timed("log", task(_log_results, name="log_results", cache_policy=NONE))


def _log_baseline(baseline: Baseline, point: Point, reviews: Stage, ctx: tracking.RunContext,
                  run_name: str) -> dict[str, Any]:
    """A new baseline run in the experiment: the dataset's settings and what the baseline
    chose as params, the network's metric keys, test_predictions.parquet (per-review
    correctness for the paired tests), per_class.csv (k > 2 classes) and the confusion
    matrix. Returns its row: run id and metrics."""
    evaluation, labels = baseline.evaluation, read_labels(reviews)
    settings = {k: v for k, v in point.flat().items() if k.startswith("dataset.")}
    chosen = {f"baseline.{k}": v for k, v in baseline.params.items()}
    with tracking.start_run(ctx, run_name) as run_id:
        tracking.set_tags(tracking.baseline_tags(baseline.name, baseline.stage.key,
                                                 reviews.key))
        tracking.log_params({"baseline": baseline.name, **settings, **chosen},
                            yaml.safe_dump({"baseline": baseline.name, **chosen,
                                            "dataset": point.dataset.model_dump()},
                                           sort_keys=False))
        tracking.log_labels(None if labels.sentiment else labels.classes, labels.dropped_rows)
        tracking.log_inputs({"reviews": reviews.key, "baseline": baseline.stage.key},
                            reviews.file("reviews.parquet"), point.name)
        frames = {"test_predictions.parquet": evaluation.predictions["test"]}
        if evaluation.multiclass:
            frames["per_class.csv"] = evaluation.per_class_frame()
        figure = plots.plot_confusion(evaluation.confusion, evaluation.classes)
        tracking.log_report({**evaluation.metrics, "fit_seconds": baseline.info["fit_seconds"]},
                            {"confusion_matrix.png": figure}, frames,
                            {baselines.INFO_FILE: json.dumps(baseline.info, indent=2,
                                                             ensure_ascii=False)})
        # The fitted baseline as a raw-text model, loaded by the same public loader as a
        # network's: `rnnflow predict --run <this run>` and `mlflow models serve` answer with
        # it. Not findable by `--run latest`/`best`, which mean a trained model.
        tracking.log_text_model(
            baselines.baseline_model_files(baseline.stage), api.LOADER,
            predict.outputs(baselines.baseline_model(baseline.stage)),
            code_paths=[str(Path(rnnflow.__file__).parent)], findable=False,
            requirements=("scikit-learn", "scipy"))
    return {"run_id": run_id, "reused": False, **evaluation.metrics}


log_baseline = task(_log_baseline, name="log_baseline", cache_policy=NONE)
