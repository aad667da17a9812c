"""The `train-rnn` flow: download -> read -> tokenize -> embed -> vectorize -> pad -> train ->
evaluate -> report. A params file with a grid becomes one MLflow parent run with a child run
per point."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from rnnflow import faults, tasks, tracking
from rnnflow import tokens as tokens_step
from rnnflow.config import Experiment, Plan, load_plan
from rnnflow.embeddings import load_vocab
from rnnflow.evaluate import Evaluation
from rnnflow.model import stock_twin
from rnnflow.predict import TextModel
from rnnflow.report import summarize
from rnnflow.results import PointResult, best_index, plot_test_accuracy, results_table
from rnnflow.storage import Stage, content_key
from rnnflow.tracking import Resume, RunContext
from rnnflow.train import EpochHook, Fit, limit_threads

log = logging.getLogger("rnnflow.flow")


@flow(name="train-rnn")
def train_rnn(params_file: str, overrides: dict[str, Any] | None = None,
              fresh: bool = False) -> list[dict[str, Any]]:
    """Run every point of a params file, `repeats` times each; returns one row per run.

    `overrides` maps dotted keys to values (`{"train.epochs": 3}`); `fresh` trains from scratch
    even where an earlier run could be reused or continued.
    """
    plan = load_plan(params_file, overrides)  # every point valid before any work
    ctx = RunContext(
        experiment_id=tracking.use_experiment(plan.name),  # fails fast if MLflow is unreachable
        tracking_uri=tracking.tracking_uri(), fresh=fresh,
        tags={"prefect.flow_run_id": str(flow_run.id or ""),
              "git_commit": tracking.git_commit() or "", "params_file": str(params_file)})
    if plan.search is not None:  # a search (a grid beside it only seeds its first trials)
        from rnnflow.flows.search import run_search

        return run_search(plan, ctx)
    if plan.is_grid:
        with tracking.group_run(ctx, f"{plan.name}-grid") as parent_id:
            points = _run_points(plan, ctx.under(parent_id))
            table = results_table(points)
            tracking.log_grid(parent_id, table, table.run_id[best_index(points)],
                              plan.as_yaml(), {"test_accuracy.png": plot_test_accuracy(
                                  table, plan.labels)})
    else:
        parent_id = None
        points = _run_points(plan, ctx)
        table = results_table(points)
    _publish(plan.name, table, parent_id)
    if plan.registry.enabled:
        from rnnflow.flows.search import register_winner

        best = points[best_index(points)]
        register_winner(plan, max(best.runs, key=lambda r: r["val_accuracy"])["run_id"])
    return [run for point in points for run in point.runs]


def run_point(point: Experiment, ctx: RunContext, run_name: str,
              prepared: Prepared | None = None,
              on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Train, evaluate and log one point as an MLflow run; preprocess first unless `prepared`
    (a grid on Dask prepares every point in the flow before the fan-out). A FINISHED run that
    trained the same way is reused instead, unless `ctx.fresh`. `on_epoch_end` replaces the
    per-epoch logging of metrics and checkpoint (a search trial reports to its study)."""
    started, clock = time.perf_counter(), _Clock()
    prep = prepared or _prepare(point, ctx, run_name)
    train_key = _train_key(point, prep)
    if not ctx.fresh and (done := tracking.find_finished(
            ctx.experiment_id, train_key, point.train.epochs)):
        log.info("%s: reusing finished run %s (--fresh trains again)", run_name, done.run_id)
        return {"run_id": done.run_id, "reused": True, **done.metrics}
    # The MLflow run starts before training, so a failure leaves a FAILED run with its error.
    with tracking.start_run(ctx, run_name) as run_id, \
            tempfile.TemporaryDirectory(prefix="rnnflow-ckpt-") as scratch:
        tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(), sort_keys=False))
        clock.seconds.update(prep.step_seconds)
        tracking.log_inputs(prep.stage_keys(), prep.reviews.file("reviews.parquet"), point.name)
        resume = _resume(point, ctx, train_key, Path(scratch) / "from")
        with clock("train"):
            model, fit = tasks.train_model(
                padded=prep.padded, embeddings=prep.embeddings, model_cfg=point.model,
                train_cfg=point.train, checkpoint_dir=Path(scratch) / "ckpt",
                trainable_embedding=point.embedding.trainable,
                on_epoch_end=on_epoch_end or _log_epoch,
                resume_from=resume and resume.path, initial_epoch=resume.epoch if resume else 0)
        with clock("evaluate"):
            evaluation = tasks.evaluate_model(model, prep.padded)
        with clock("log"):
            _log_outcome(point, prep, model, fit, evaluation, resume, clock.seconds)
        duration = time.perf_counter() - started
        tracking.log_metrics({"seconds_log": clock.seconds["log"], "duration_seconds": duration})
    metrics = evaluation.metrics
    log.info("run %s: val_accuracy %.4f, test_accuracy %.4f",
             run_id, metrics["val_accuracy"], metrics["test_accuracy"])
    return {"run_id": run_id, "reused": False, **metrics, "train_seconds": clock.seconds["train"],
            "preprocess_seconds": prep.seconds, "duration_seconds": duration}


def _prepare(point: Experiment, ctx: RunContext, run_name: str) -> Prepared:
    """Preprocess; a step that fails leaves a FAILED run with the error and the settings."""
    try:
        return preprocess(point)
    except BaseException:
        with tracking.start_run(ctx, run_name):
            tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(), sort_keys=False))
            raise


def _resume(point: Experiment, ctx: RunContext, train_key: str,
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


def _log_outcome(point: Experiment, prep: Prepared, model, fit: Fit, evaluation: Evaluation,
                 resume: Resume | None, seconds: dict[str, float]) -> None:
    """The report (metrics, plots, tables), the Keras model and the raw-text model."""
    text_model = TextModel(model, load_vocab(prep.embeddings), point.tokenize, point.pad)
    tracking.log_report(summarize(
        model=model, evaluation=evaluation, fit=fit, vector_stats=prep.vector_stats,
        history=resume.prepend(fit.history) if resume else fit.history,
        seconds=seconds, preprocess_seconds=prep.seconds,
        reviews_parquet=prep.reviews.file("reviews.parquet"), mistakes=point.evaluate.mistakes,
        text_model=text_model, sentences=point.evaluate.sentences, experiment=point))
    tracking.log_keras_model(stock_twin(model, point.model))  # loads without rnnflow
    tracking.log_text_model(model, text_model.vocab, point.tokenize.model_dump(),
                            point.pad.model_dump())


def _log_epoch(epoch: int, logs: dict[str, float], checkpoint: Path) -> None:
    """After every epoch: its metrics, then its checkpoint (which marks the epoch done)."""
    tracking.log_epoch(epoch, logs)
    tracking.log_checkpoint(checkpoint, epoch)
    faults.maybe_fail(f"after_epoch:{epoch}")


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

    def stage_keys(self) -> dict[str, str]:
        return {s.name: s.key for s in (self.reviews, self.tokens, self.embeddings,
                                        self.vectors, self.padded)}


def preprocess(point: Experiment) -> Prepared:
    """Download -> read -> tokenize -> embed -> vectorize -> pad. A step whose output is already
    under data/ is Cached, so points that share a prefix of the pipeline share its files."""
    started, clock = time.perf_counter(), _Clock()
    with clock("download"):
        raw_path, digest = tasks.download_dataset(point.dataset.url, point.dataset.sha256)
    with clock("read"):
        tokens_step.start_early(digest, point.dataset, point.tokenize)
        reviews = tasks.read_reviews(raw_path, digest, point.dataset)
    with clock("tokenize"):
        tokens = tasks.tokenize_reviews(reviews, point.tokenize)
    with clock("embed"):
        emb = tasks.build_embeddings(tokens, point.embedding, seed=point.dataset.seed)
    with clock("vectorize"):
        vectors, vector_stats = tasks.vectorize_tokens(tokens, emb)
    with clock("pad"):
        padded = tasks.pad_sequences(vectors, point.pad)
    return Prepared(reviews, tokens, emb, vectors, padded, vector_stats,
                    time.perf_counter() - started, clock.seconds)


def _train_key(point: Experiment, prep: Prepared) -> str:
    """Everything that shapes training except the number of epochs: runs that share it can
    continue one another."""
    settings = {k: v for k, v in point.flat().items() if k != "train.epochs"}
    return content_key(settings, f"{prep.embeddings.key}+{prep.padded.key}", 1)


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


# --- the points of a plan: here, or on Dask ------------------------------------------------------
@task(name="train_point", cache_policy=NONE)
def train_point(point: Experiment, prepared: Prepared, ctx: RunContext,
                run_name: str) -> dict[str, Any]:
    """One run in a Dask worker: train, evaluate and log a child run of `ctx.parent_id`."""
    import dataclasses

    from rnnflow.flows.on_dask import worker_tags, worker_threads

    limit_threads(worker_threads())  # before TensorFlow's first op in this worker
    tracking.use_tracking_uri(ctx.tracking_uri)
    ctx = dataclasses.replace(ctx, tags={**ctx.tags, **worker_tags()})
    return run_point(point, ctx, run_name, prepared)


def _run_points(plan: Plan, ctx: RunContext) -> list[PointResult]:
    """Every point, `plan.repeats` times: one run after another here (`runner: local`), or,
    once every stage is built here, as `train_point` tasks on Dask (`runner: dask`). A point
    with repeats gets a run that groups them and logs their mean and spread."""
    varied = plan.varied_keys()
    names = plan.labels
    with contextlib.ExitStack() as groups:
        group_ids = [groups.enter_context(tracking.group_run(ctx, name))
                     if plan.repeats > 1 else None for name in names]
        calls = [{"point": trial, "ctx": ctx.under(group) if group else ctx,
                  "run_name": f"{name} #{i + 1}" if group else name}
                 for point, name, group in zip(plan.points, names, group_ids, strict=True)
                 for i, trial in enumerate(plan.trials(point))]
        if plan.runner == "local":
            rows = [run_point(**call) for call in calls]
        else:
            from rnnflow.flows.on_dask import run_on_dask

            for call in calls:  # once per stage key: the rest are Cached
                call["prepared"] = preprocess(call["point"])
            rows = run_on_dask(train_point, calls, plan.dask_address)
        points = []
        for j, (point, group) in enumerate(zip(plan.points, group_ids, strict=True)):
            runs = rows[j * plan.repeats:(j + 1) * plan.repeats]
            flat = point.flat()
            result = PointResult({"point": names[j], **{k: flat[k] for k in varied}}, runs, [
                tracking.load_test_predictions(r["run_id"]) for r in runs], group)
            if group:
                tracking.log_group(group, {**flat, "train.seed": f"{point.train.seed}+i",
                                           "repeats": plan.repeats},
                                   result.summary_metrics(),
                                   {"repeats": str(plan.repeats),  # reused runs are linked here
                                    "runs": ",".join(r["run_id"] for r in runs)})
            points.append(result)
    return points


# --- what the flow run reports ------------------------------------------------------------------
def _publish(name: str, table: pd.DataFrame, parent_id: str | None) -> None:
    """Prefect artifacts: the results table and a summary of the best point."""
    key = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "rnnflow"
    best = table.loc[table.vs_best == "best"].iloc[0]
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    create_table_artifact(key=f"{key}-results", table=records,
                          description=f"train-rnn results for {name}, one row per point")
    lines = [f"# {name}: best of {len(table)} point(s) by val_accuracy", ""]
    lines += [f"- **{k}**: {best[k]}" for k in table.columns if k != "run_id"]
    lines += [f"- **MLflow run**: `{best.run_id}`"]
    if parent_id:
        lines += [f"- **MLflow parent run**: `{parent_id}`"]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines),
                             description=f"best train-rnn point for {name}")
