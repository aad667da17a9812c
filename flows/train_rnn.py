"""The `train-rnn` flow: the lesson's chain for every point of a params file.

    download -> read -> tokenize -> word2vec -> ids -> pad     `prepare`: cached Prefect tasks
      -> train -> evaluate -> log                              `run_point`: one MLflow run

A params file with a grid, variants or repeats runs `run_point` for each of its points
(flows/grid.py), one with a search for each trial its study draws (flows/search.py); either
way the best point's model is then registered as the challenger (flows/champion.py).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import flow
from prefect.runtime import flow_run

import rnnflow
from flows.artifacts import link_run
from flows.champion import register_winner
from flows.grid import run_grid
from flows.search import run_search
from rnnflow import faults, tracking
from rnnflow.comparisons.plan import Plan, load_plan
from rnnflow.config import Point
from rnnflow.data.embeddings import load_vocab
from rnnflow.data.reviews import Labels, read_labels
from rnnflow.data.storage import Stage, content_key
from rnnflow.data.tokens import start_early as start_tokenizers
from rnnflow.insight.report import FinishedRun, summarize
from rnnflow.memory import release_memory
from rnnflow.network import predict
from rnnflow.network.device import check_device
from rnnflow.network.evaluate import Evaluation
from rnnflow.network.model import stock_twin
from rnnflow.network.train import EpochHook, Fit
from rnnflow.tracking import Resume, RunContext
from tasks.stages import (
    build_embeddings,
    download_dataset,
    pad_sequences,
    read_reviews,
    tokenize_reviews,
    vectorize_tokens,
)
from tasks.training import evaluate_model, train_model

log = logging.getLogger("rnnflow.flow")


def _flow_run_name() -> str:
    """A flow run is named after its params file (`quick` for params/quick.yaml)."""
    return Path(flow_run.parameters["params_file"]).stem


@flow(name="train-rnn", flow_run_name=_flow_run_name)
def train_rnn(params_file: str, overrides: dict[str, Any] | None = None,
              fresh: bool = False) -> list[dict[str, Any]]:
    """Run every point of a params file, `repeats` times each; returns one row per run.

    `overrides` maps dotted keys to values (`{"train.epochs": 3}`); `fresh` trains from scratch
    even where an earlier run could be reused or continued.
    """
    plan = load_plan(params_file, overrides)  # every point valid before any work
    if plan.runner == "local":  # a Dask worker checks its own device before its point trains
        check_device(plan.points)
    ctx = _run_context(plan, params_file, fresh)  # fails fast if MLflow is unreachable
    # A search draws its points (a grid beside it only seeds its first trials); else the grid.
    run_points = run_search if plan.search is not None else run_grid
    rows, best_run_id = run_points(plan, ctx, run_point, prepare)
    if best_run_id and plan.registry.enabled:
        register_winner(plan, best_run_id)
    return rows


def prepare(point: Point) -> Prepared:
    """download -> read -> tokenize -> word2vec -> ids -> pad. A step whose output is already
    under data/ is Cached, so points that share a prefix of the chain share its files."""
    started, clock = time.perf_counter(), _Clock()
    with clock("download"):
        raw_path, digest = download_dataset(point.dataset.url, point.dataset.sha256)
    with clock("read"):
        start_tokenizers(digest, point.dataset, point.tokenize)  # they boot during the read
        reviews = read_reviews(raw_path, digest, point.dataset)
    with clock("tokenize"):
        tokens = tokenize_reviews(reviews, point.tokenize)
    with clock("embed"):
        table = build_embeddings(tokens, point.embedding, seed=point.dataset.seed)
    with clock("vectorize"):
        ids, vector_stats = vectorize_tokens(tokens, table)
    with clock("pad"):
        padded = pad_sequences(ids, point.pad)
    return Prepared(reviews, tokens, table, ids, padded, vector_stats,
                    time.perf_counter() - started, clock.seconds, read_labels(reviews))


def run_point(point: Point, ctx: RunContext, run_name: str,
              prepared: Prepared | None = None,
              on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """train -> evaluate -> log, as one MLflow run; `prepare` first unless `prepared` (a grid on
    Dask prepares every point in the flow before the fan-out). A FINISHED run that trained the
    same way is reused instead, unless `ctx.fresh`. `on_epoch_end` replaces the per-epoch
    logging of metrics and checkpoint (a search trial reports to its study)."""
    started, clock = time.perf_counter(), _Clock()
    prep = prepared or _prepare_or_fail(point, ctx, run_name)
    train_key = _train_key(point, prep)
    if not ctx.fresh and (done := tracking.find_finished(
            ctx.experiment_id, train_key, point.train.epochs)):
        log.info("%s: reusing finished run %s (--fresh trains again)", run_name, done.run_id)
        link_run(ctx, done.run_id, f"{run_name} (reused)")
        return {"run_id": done.run_id, "reused": True, **done.metrics}
    # The MLflow run starts before training, so a failure leaves a FAILED run with its error.
    with tracking.start_run(ctx, run_name) as run_id, \
            tempfile.TemporaryDirectory(prefix="rnnflow-ckpt-") as scratch:
        link_run(ctx, run_id, run_name)  # however it ends: a pruned trial, a failure
        tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(), sort_keys=False))
        tracking.log_labels(None if prep.labels.sentiment else prep.labels.classes,
                            prep.labels.dropped_rows)
        clock.seconds.update(prep.step_seconds)
        tracking.log_inputs(prep.stage_keys(), prep.reviews.file("reviews.parquet"), point.name)
        resume = _resume(point, ctx, train_key, Path(scratch) / "from")
        with clock("train"):
            model, fit = train_model(
                padded=prep.padded, embeddings=prep.embeddings, model_cfg=point.model,
                train_cfg=point.train, checkpoint_dir=Path(scratch) / "ckpt",
                trainable_embedding=point.embedding.trainable,
                on_epoch_end=on_epoch_end or _log_epoch,
                resume_from=resume and resume.path, initial_epoch=resume.epoch if resume else 0,
                classes=prep.labels.classes)
        tracking.set_tags(fit.tags)  # device, kernel and precision
        with clock("evaluate"):
            log.info("%s: evaluating val and test", run_name)
            evaluation = evaluate_model(model, prep.padded, classes=prep.labels.classes)
        with clock("log"):
            log.info("%s: logging its report and models", run_name)
            _log_run(point, prep, model, fit, evaluation, resume, clock.seconds)
        duration = time.perf_counter() - started
        tracking.log_metrics({"seconds_log": clock.seconds["log"], "duration_seconds": duration})
    metrics = evaluation.metrics
    log.info("run %s: val_accuracy %.4f, test_accuracy %.4f",
             run_id, metrics["val_accuracy"], metrics["test_accuracy"])
    return {"run_id": run_id, "reused": False, **metrics, "train_seconds": clock.seconds["train"],
            "preprocess_seconds": prep.seconds, "duration_seconds": duration}


# --- the chain's parts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """The stages one point trains on, all under data/ (RNNFLOW_DATA_DIR)."""

    reviews: Stage
    tokens: Stage
    embeddings: Stage
    vectors: Stage
    padded: Stage
    vector_stats: dict[str, float]
    seconds: float
    step_seconds: dict[str, float]
    labels: Labels

    def stage_keys(self) -> dict[str, str]:
        return {s.name: s.key for s in (self.reviews, self.tokens, self.embeddings,
                                        self.vectors, self.padded)}


def _run_context(plan: Plan, params_file: str, fresh: bool) -> RunContext:
    """The experiment every run of this flow run logs to, and the tags they all carry."""
    return RunContext(
        experiment_id=tracking.use_experiment(plan.name), tracking_uri=tracking.tracking_uri(),
        fresh=fresh, tags={"prefect.flow_run_id": str(flow_run.id or ""),
                           "git_commit": tracking.git_commit() or "",
                           "params_file": str(params_file)})


def _prepare_or_fail(point: Point, ctx: RunContext, run_name: str) -> Prepared:
    """`prepare`; a step that fails leaves a FAILED run with the error and the settings."""
    try:
        return prepare(point)
    except BaseException:
        with tracking.start_run(ctx, run_name):
            tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(), sort_keys=False))
            raise


# Settings added after runs were logged, with the value those runs trained with: left out of
# the training key at that value, so an earlier run is still reused or continued.
_ADDED_LATER = {"train.mixed_precision": False}


def _train_key(point: Point, prep: Prepared) -> str:
    """Everything that shapes training except the number of epochs: runs that share it can
    continue one another."""
    settings = {k: v for k, v in point.flat().items() if k != "train.epochs"
                and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}
    return content_key(settings, f"{prep.embeddings.key}+{prep.padded.key}", 1)


def _resume(point: Point, ctx: RunContext, train_key: str,
            scratch: Path) -> Resume | None:
    """The earlier run this one continues, if any (never with `fresh`); tags the training key,
    by which a later run finds this one."""
    resume = None if ctx.fresh else tracking.find_resume(
        ctx.experiment_id, train_key, point.train.epochs, scratch)
    tracking.set_tags({tracking.TRAIN_KEY_TAG: train_key,
                       "continued_from": resume.run_id if resume else ""})
    if resume:
        log.info("continuing run %s from its epoch %d", resume.run_id, resume.epoch)
    return resume


def _log_epoch(epoch: int, logs: dict[str, float], checkpoint: Path) -> None:
    """After every epoch: its metrics, then its checkpoint (which marks the epoch done)."""
    tracking.log_epoch(epoch, logs)
    tracking.log_checkpoint(checkpoint, epoch)
    faults.maybe_fail(f"after_epoch:{epoch}")


def _log_run(point: Point, prep: Prepared, model, fit: Fit, evaluation: Evaluation,
             resume: Resume | None, seconds: dict[str, float]) -> None:
    """The report (metrics, plots, tables, pages), the Keras model and the raw-text model."""
    text_model = predict.TextModel(model, load_vocab(prep.embeddings), point.tokenize, point.pad,
                                   classes=prep.labels.classes if evaluation.multiclass
                                   else None)
    report = summarize(FinishedRun(
        point=point, model=model, text_model=text_model, fit=fit, evaluation=evaluation,
        history=resume.prepend(fit.history) if resume else fit.history,
        vector_stats=prep.vector_stats, seconds=seconds, preprocess_seconds=prep.seconds,
        reviews_parquet=prep.reviews.file("reviews.parquet"),
        classes=None if prep.labels.sentiment else prep.labels.classes))
    tracking.log_report(report.metrics, report.figures, report.frames, report.texts)
    if report.restored:  # early stopping: what `mlflow ui` shows is the logged model's score
        tracking.log_epoch(report.restored_step, report.restored)
    # Each model logged below is saved, and MLflow loads the text model back to check its
    # input example: the run's memory peak. Keras models hold reference cycles, so what the
    # report and the stock twin leave is freed by a collection first, not when they go.
    release_memory()
    tracking.log_keras_model(stock_twin(model, point.model))  # loads without rnnflow
    release_memory()
    with tempfile.TemporaryDirectory(prefix="rnnflow-text-model-") as tmp:
        tracking.log_text_model(predict.save_text_model(text_model, Path(tmp)), predict.LOADER,
                                predict.outputs(text_model),
                                code_paths=[str(Path(rnnflow.__file__).parent)])


class _Clock:
    """Wall seconds per step, logged as `seconds_<step>` metrics: where a run's time went."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = time.perf_counter() - started
